"""charjax.backend: the compilation cache, deterministic GPU ops and steps per call, as a
fresh process sets them up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest
from conftest import ROOT, SESSION_DIR, cpu_only

from charjax import backend, kernels

# A fresh process: configure() first, then one train step of the tiny model (on the oneDNN
# kernels where they load); prints what it saw as JSON.
_SCRIPT = r"""
import hashlib, json, os, sys
from charjax import backend
from charjax_configs import default

config = default.get_config()
config.deterministic = sys.argv[1] == "1"
config.compilation_cache = sys.argv[2] == "1"
config.model.tutorial.hidden = 16
settings = backend.configure(config)
flags = os.environ.get("XLA_FLAGS", "")
started_before = backend.backend_started()

import jax, jax.numpy as jnp, numpy as np
from charjax import kernels, train

# weights drawn here: jax's initialisers would compile a program of their own
rng = np.random.default_rng(0)
abstract = jax.eval_shape(lambda: train.create_train_state(config, jax.random.key(0)))
state = jax.tree_util.tree_map(
    lambda a: jnp.asarray(rng.normal(0, 0.05, a.shape).astype(a.dtype)), abstract)
batch = {"image": jnp.asarray(rng.integers(0, 256, (8, 48, 48, 1), dtype=np.uint8)),
         "label": jnp.asarray(rng.integers(0, 62, 8).astype(np.int32))}
first = len(backend.compiled_programs())
state, metrics = jax.jit(train.train_step)(state, batch, jax.random.key(1))
step = [p for p in backend.compiled_programs()[first:] if p.name == "jit(train_step)"]
leaves = jax.tree_util.tree_leaves((state.params, state.opt_state, metrics))
print(json.dumps({
    "flags": flags, "started_before": started_before,
    "cache_dir": settings.cache_dir, "cache_set_by": settings.cache_set_by,
    "jax_cache_dir": jax.config.jax_compilation_cache_dir,
    "deterministic": settings.deterministic, "line": backend.describe(),
    "impl": kernels.select(config.model.impl).impl,
    "step_from_cache": [p.from_cache for p in step],
    "digest": hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest(),
}))
"""


def _fresh_process(tmp_path, deterministic: bool, cache: bool) -> dict:
    """Runs _SCRIPT in a process that has none of the test run's settings: no
    JAX_COMPILATION_CACHE_DIR, no deterministic flag, its own charjax cache (the oneDNN
    build linked in from the test run's, so nothing is rebuilt)."""
    cache_root = tmp_path / "charjax-cache"
    if not cache_root.exists():
        cache_root.mkdir()
        built = os.path.join(SESSION_DIR, "charjax-cache", "kernels")
        if os.path.isdir(built):
            os.symlink(built, cache_root / "kernels")
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if not f.startswith(backend.DETERMINISTIC_FLAG))
    env["CHARJAX_CACHE"] = str(cache_root)
    env.pop(backend.CACHE_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(int(deterministic)), str(int(cache))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_compilation_cache_and_deterministic_flag_in_a_fresh_process(tmp_path):
    first = _fresh_process(tmp_path, deterministic=True, cache=True)
    # the flag went into XLA_FLAGS before XLA started, so this backend runs with it
    assert not first["started_before"]
    assert f"{backend.DETERMINISTIC_FLAG}=true" in first["flags"].split()
    assert first["deterministic"] and "deterministic GPU ops: on" in first["line"]
    # the cache is charjax's own folder, and the step was compiled into it
    xla = tmp_path / "charjax-cache" / backend.CACHE_SUBDIR
    assert first["cache_dir"] == first["jax_cache_dir"] == str(xla)
    assert first["cache_set_by"] == "charjax" and first["step_from_cache"] == [False]
    assert any(xla.iterdir())

    # A second process loads the step from the cache (the oneDNN FFI targets are registered
    # before any program is looked up) and computes the same bits.
    second = _fresh_process(tmp_path, deterministic=True, cache=True)
    assert second["step_from_cache"] == [True]
    assert second["digest"] == first["digest"]
    assert second["impl"] == first["impl"]
    if jax.default_backend() == "cpu" and kernels.available():
        assert first["impl"] == "onednn"  # the round trip covered the FFI custom calls

    # Without the flag and without the cache (by config): nothing set, same bits on a CPU.
    plain = _fresh_process(tmp_path, deterministic=False, cache=False)
    assert backend.DETERMINISTIC_FLAG not in plain["flags"]
    assert not plain["deterministic"] and "deterministic GPU ops: off" in plain["line"]
    assert plain["cache_dir"] is None and plain["step_from_cache"] == [False]
    if jax.default_backend() == "cpu":
        assert plain["digest"] == first["digest"]


def test_cache_folder_decision(monkeypatch, tmp_path):
    monkeypatch.setenv("CHARJAX_CACHE", str(tmp_path))
    monkeypatch.delenv(backend.CACHE_ENV, raising=False)
    assert backend.cache_decision(True, None) == (str(tmp_path / "xla"), "charjax")
    assert backend.cache_decision(True, "/elsewhere") == ("/elsewhere", "outside charjax")
    assert backend.cache_decision(False, "/elsewhere")[0] is None
    for value in ("off", "0", "False", "no"):
        monkeypatch.setenv(backend.CACHE_ENV, value)
        path, why = backend.cache_decision(True, None)
        assert path is None and backend.CACHE_ENV in why
    monkeypatch.setenv(backend.CACHE_ENV, "on")
    assert backend.cache_decision(True, None)[0] == str(tmp_path / "xla")


def test_deterministic_flag_is_added_once_and_an_explicit_value_is_kept():
    flag = backend.DETERMINISTIC_FLAG
    assert backend.with_deterministic_flag("") == f"{flag}=true"
    assert backend.with_deterministic_flag("--xla_foo=1") == f"--xla_foo=1 {flag}=true"
    once = backend.with_deterministic_flag("")
    assert backend.with_deterministic_flag(once) == once
    assert backend.with_deterministic_flag(f"{flag}=false") == f"{flag}=false"
    assert backend.deterministic_flag_value(f"--xla_foo=1 {flag}=true")
    assert not backend.deterministic_flag_value(f"{flag}=false")
    assert not backend.deterministic_flag_value("")


def test_the_test_run_itself_runs_with_the_flag():
    # conftest sets it, as `charjax train` does, before any backend starts
    assert backend.deterministic_flag_value()


@pytest.mark.parametrize("configured,steps,platform,expected", [
    (0, 930, "cpu", 1), (0, 930, "gpu", backend.ACCELERATOR_STEPS_PER_CALL),
    (0, 5, "gpu", 5), (4, 930, "cpu", 4), (64, 10, "cpu", 10), (1, 930, "gpu", 1),
])
def test_steps_per_call(configured, steps, platform, expected):
    assert backend.steps_per_call(configured, steps, platform) == expected


@cpu_only
def test_the_cpu_runs_one_step_per_call_by_default():
    assert backend.steps_per_call(0, 930) == 1


def test_precompile_leaves_wrappers_to_their_first_call():
    jitted = jax.jit(lambda x: x * 3 + 1)
    parts = backend.precompile([("tripler", jitted, (jax.numpy.arange(5.0),)),
                                ("wrapper", lambda x: x, (1,))])
    assert len(parts) == 1 and parts[0].startswith("tripler in ")
    first = len(backend.compiled_programs())
    jitted(jax.numpy.arange(5.0))  # compiled already: the call compiles nothing
    assert len(backend.compiled_programs()) == first
