"""Shared fixtures: tiny configs so the whole suite stays fast on 2 CPU cores."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# One on-disk cache of compiled XLA programs for the session and every process it starts
# (command-line tests, multi-device runs): the same tiny model's steps compile once, not
# once per process. Set before JAX compiles anything; removed when the session ends.
_JIT_CACHE = tempfile.mkdtemp(prefix="charjax-test-jit-")
atexit.register(shutil.rmtree, _JIT_CACHE, ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = _JIT_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

import jax  # noqa: E402
import ml_collections  # noqa: E402
import pytest  # noqa: E402

from charjax import train  # noqa: E402
from charjax_configs import default  # noqa: E402

jax.config.update("jax_compilation_cache_dir", _JIT_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The default config shrunk to a few hundred images and one epoch (62 x 8 images: 6 to
# train, 1 to validate, 1 to test per class), tuned so two epochs learn well above chance.
TINY = {
    "num_epochs": 1,
    "batch_size": 16,
    "eval_batch_size": 64,
    "learning_rate": 2e-3,
    "log_every_steps": 0,
    "model.tutorial.dropout": 0.0,
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


@pytest.fixture(autouse=True, scope="session")
def cache_dir(tmp_path_factory):
    """One synthetic-data cache for the whole session, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("charjax-cache")
    old = os.environ.get("CHARJAX_CACHE")
    os.environ["CHARJAX_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CHARJAX_CACHE", None)
    else:
        os.environ["CHARJAX_CACHE"] = old


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny two-epoch run shared by the eval, predict and reporting tests."""
    from charjax import train

    workdir = tmp_path_factory.mktemp("trained-run")
    result = train.train_and_evaluate(tiny_config(num_epochs=2), str(workdir))
    return workdir, result
