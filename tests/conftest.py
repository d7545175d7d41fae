"""Shared fixtures: tiny configs so the whole suite stays fast on 2 CPU cores."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import tempfile

# One folder for the whole test run, shared by every process it starts (pytest-xdist's
# workers, command-line tests, multi-device runs): the first process creates it and passes
# it on in the environment; only that process removes it at exit. It holds
# - the on-disk cache of compiled XLA programs: the same tiny model's steps compile once
#   per run, not once per process (set before JAX compiles anything);
# - the charjax cache (synthetic data, the oneDNN kernels' build);
# - the shared tiny training run (`trained_run`).
_SESSION_ENV = "CHARJAX_TEST_SESSION_DIR"
SESSION_DIR = os.environ.get(_SESSION_ENV)
if not SESSION_DIR or not os.path.isdir(SESSION_DIR):
    SESSION_DIR = tempfile.mkdtemp(prefix="charjax-test-")
    os.environ[_SESSION_ENV] = SESSION_DIR
    atexit.register(shutil.rmtree, SESSION_DIR, ignore_errors=True)
_JIT_CACHE = os.path.join(SESSION_DIR, "jit")
_CHARJAX_CACHE = os.path.join(SESSION_DIR, "charjax-cache")
os.environ["JAX_COMPILATION_CACHE_DIR"] = _JIT_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
# pytest-xdist's workers and the command lines tests start share one GPU: without this the
# first process would reserve 75 % of its memory and the others fail to start. (Read when
# JAX starts its backend; no effect on a CPU.)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from charjax import backend  # noqa: E402

# As a run's `config.deterministic` does, for every process of the test run (XLA reads its
# flags when its backend starts): same inputs, same bits, on a GPU too.
os.environ["XLA_FLAGS"] = backend.with_deterministic_flag(os.environ.get("XLA_FLAGS", ""))

import jax  # noqa: E402
import ml_collections  # noqa: E402
import pytest  # noqa: E402

from charjax import train  # noqa: E402
from charjax_configs import default  # noqa: E402

jax.config.update("jax_compilation_cache_dir", _JIT_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tests of what only the CPU has (the oneDNN kernels, XLA:CPU's own behaviour) carry this
# marker and are skipped, with the reason, on other backends.
cpu_only = pytest.mark.cpu_only


def pytest_configure(config):
    config.addinivalue_line("markers", "cpu_only: needs JAX's CPU backend; skipped elsewhere")


def pytest_runtest_setup(item):
    # Asked here, in the process that runs the test, not at import: pytest-xdist's
    # controller imports this file too and must not start a backend (it would hold a GPU).
    if item.get_closest_marker("cpu_only") is not None and jax.default_backend() != "cpu":
        pytest.skip(f"needs JAX's CPU backend; this one is {jax.default_backend()}")


@pytest.fixture
def highest_precision():
    """float32 matmuls and convolutions at full precision: a GPU's default rounds their
    inputs to TF32 (10-bit mantissa), ~1e-3 relative, far above what a comparison of two
    float32 implementations should allow. No effect on a CPU."""
    with jax.default_matmul_precision("highest"):
        yield


# The default config shrunk to a few hundred images and one epoch (62 x 8 images: 6 to
# train, 1 to validate, 1 to test per class), tuned so two epochs learn well above chance.
TINY = {
    "num_epochs": 1,
    "batch_size": 16,
    "eval_batch_size": 64,
    "learning_rate": 2e-3,
    "log_every_steps": 0,
    "model.tutorial.dropout": 0.0,
    # the tutorial's dense width, which the suite's tolerances were measured with
    "model.tutorial.hidden": 128,
    "data.synthetic.num_images": 62 * 8,
    "data.val_fraction": 0.125,
    "data.test_fraction": 0.125,
    # a constant rate: a 1-epoch cosine decay would leave tests nothing to learn
    "optimizer.schedule": "constant",
    # distortions make every step heavier; tests/test_augment.py covers them
    "augment.enabled": False,
}


# One jitted train step for every test that calls it directly: compiled once per model,
# batch shape and static option, instead of running op by op.
jitted_train_step = jax.jit(train.train_step, static_argnums=(3, 4, 5))


def tiny_overrides(**overrides) -> list[str]:
    """TINY (and `overrides`) as `--config.FIELD=VALUE` flags for the CLI."""
    return [f"--config.{k}={v}" for k, v in {**TINY, **overrides}.items()]


def default_config(**overrides) -> ml_collections.ConfigDict:
    """configs/default.py with `overrides` (dotted keys) applied."""
    config = default.get_config()
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return config


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """configs/default.py with TINY (and `overrides`, dotted keys) applied."""
    return default_config(**{**TINY, **overrides})


def data_config(**overrides) -> ml_collections.ConfigDict:
    """The default config's `data` block with `overrides` (dotted keys below data)."""
    return default_config(**{f"data.{k}": v for k, v in overrides.items()}).data


@contextlib.contextmanager
def _session_lock(name: str):
    """An exclusive lock on SESSION_DIR/NAME.lock, across the run's processes."""
    with open(os.path.join(SESSION_DIR, f"{name}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(autouse=True, scope="session")
def cache_dir():
    """One charjax cache (synthetic data, kernels) for the whole run, never ~/.cache."""
    path = _CHARJAX_CACHE
    old = os.environ.get("CHARJAX_CACHE")
    os.environ["CHARJAX_CACHE"] = path
    yield path
    if old is None:
        os.environ.pop("CHARJAX_CACHE", None)
    else:
        os.environ["CHARJAX_CACHE"] = old


def _shared_run() -> tuple[pathlib.Path, dict]:
    """(workdir, what training returned) of the shared tiny two-epoch run: trained once per
    test run, by whichever process asks first, while the others wait."""
    workdir = pathlib.Path(SESSION_DIR, "trained-run")
    returned = pathlib.Path(SESSION_DIR, "trained-run.json")
    with _session_lock("trained-run"):
        if not returned.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a process that died mid-run
            old = os.environ.get("CHARJAX_CACHE")
            os.environ["CHARJAX_CACHE"] = _CHARJAX_CACHE
            before = len(backend.compiled_programs())
            try:
                result = train.train_and_evaluate(tiny_config(num_epochs=2), str(workdir))
            finally:
                if old is None:
                    os.environ.pop("CHARJAX_CACHE", None)
                else:
                    os.environ["CHARJAX_CACHE"] = old
            compiled = [p.name for p in backend.compiled_programs()[before:]]
            pathlib.Path(SESSION_DIR, "trained-run-compiles.json").write_text(
                json.dumps(compiled))
            returned.write_text(json.dumps(result))
            return workdir, result
    return workdir, json.loads(returned.read_text())


_NEEDS_SHARED_RUN = False


def pytest_collection_modifyitems(config, items):
    """The files that use the shared run go last: with pytest-xdist, the first worker trains
    it before its first test (pytest_runtestloop) while the other starts on the rest."""
    global _NEEDS_SHARED_RUN
    uses = {item.path for item in items if "trained_run" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: item.path in uses)  # stable: the order within stays
    _NEEDS_SHARED_RUN = bool(uses)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    if _NEEDS_SHARED_RUN and os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
        _shared_run()


@pytest.fixture(scope="session")
def trained_run():
    """One tiny two-epoch run shared by the eval, predict and reporting tests. Tests only
    read it: copy it to change it."""
    return _shared_run()


@pytest.fixture(scope="session")
def trained_run_compiles(trained_run) -> list[str]:
    """The names of the XLA programs the shared run compiled (or loaded from the cache).
    It is usually the first thing its process runs, so nothing was compiled before it; when
    it is not, programs compiled already are missing from the list, never added to it."""
    return json.loads(pathlib.Path(SESSION_DIR, "trained-run-compiles.json").read_text())
