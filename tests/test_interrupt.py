"""Ctrl-C and SIGTERM mid-run: exit 130 / 143, the checkpoint in flight finished, resume exact."""

import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config, tiny_overrides

from charjax import checkpoints, cli, train

EPOCHS = 6
# Reports (TensorBoard, plots) cost seconds and play no part in stopping and resuming.
QUIET = {"report.tensorboard": False, "report.plots": False}

# Child process: the tiny run through the real `charjax` entry point. Once this process
# has saved a checkpoint it sends itself SIGINT at the 3rd step of the next epoch, so the
# signal lands mid-epoch, with steps queued on the device and the save possibly in flight.
_INTERRUPTED_RUN = """
import os, signal, sys
from charjax import checkpoints, cli, train

saved = []
write = checkpoints.save

def save(mngr, step, *args, **kwargs):
    write(mngr, step, *args, **kwargs)
    saved.append(step)

make = train.make_device_train_step

def make_step(*args, **kwargs):
    step_fn, calls = make(*args, **kwargs), [0]

    def counted(*step_args):
        if saved:
            calls[0] += 1
            if calls[0] == 3:
                os.kill(os.getpid(), signal.{signal})
        return step_fn(*step_args)

    return counted

checkpoints.save = save
train.make_device_train_step = make_step
sys.argv = {argv!r}
cli.run()
"""


def _argv(workdir):
    return ["charjax", "train", "--config", "configs/default.py", "--workdir", str(workdir),
            *tiny_overrides(num_epochs=EPOCHS, **QUIET)]


def _final_state(workdir):
    mngr = checkpoints.manager(workdir, create=False, read_only=True)
    abstract = jax.eval_shape(lambda: train.create_train_state(tiny_config(), jax.random.key(0)))
    state, _, history = checkpoints.restore(mngr, mngr.latest_step(), abstract)
    mngr.close()
    return state, history


def test_sigint_five_times_exits_130_and_resumes_bit_identical(tmp_path):
    straight = tmp_path / "straight"
    train.train_and_evaluate(tiny_config(num_epochs=EPOCHS, **QUIET), str(straight))

    workdir = tmp_path / "interrupted"
    # The children share a compilation cache: only the first compiles the steps.
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    for attempt in range(1, 6):
        script = _INTERRUPTED_RUN.format(signal="SIGINT", argv=_argv(workdir))
        proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env=env)
        assert proc.returncode == 130, (attempt, proc.returncode, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("charjax train: error: interrupted (SIGINT)"), last
        assert "rerun the same command to resume" in last
        steps = sorted(os.listdir(workdir / "checkpoints"))
        assert [s for s in steps if not s.isdigit()] == [], steps  # no half-written step
        assert max(int(s) for s in steps) == attempt  # each run kept the epoch it finished
        assert not (workdir / "metrics.json").exists()
        assert not (workdir / "train.lock").exists()

    resumed = subprocess.run([sys.executable, "-m", "charjax", *_argv(workdir)[1:]], cwd=ROOT,
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from the checkpoint of epoch 5" in resumed.stderr

    (a, history_a), (b, history_b) = _final_state(straight), _final_state(workdir)
    assert int(a.step) == int(b.step)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in history_a]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in history_b]


def test_sigterm_mid_epoch_exits_143_in_process(tmp_path, capsys, monkeypatch):
    """The same path for SIGTERM, in this process (cheap): flag, clean stop, exit 143."""
    monkeypatch.chdir(ROOT)
    make = train.make_device_train_step

    def make_step(*args, **kwargs):
        step_fn, calls = make(*args, **kwargs), [0]

        def counted(*step_args):
            calls[0] += 1
            if calls[0] == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return step_fn(*step_args)

        return counted

    monkeypatch.setattr(train, "make_device_train_step", make_step)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.run(_argv(tmp_path / "w"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_info.value.code == 143
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("charjax train: error: interrupted (SIGTERM)"), last
    # stopped in epoch 1, before its first checkpoint: no step, no metrics, no lock left
    left = set(os.listdir(tmp_path / "w"))
    assert "config.json" in left and not left & {"checkpoints", "metrics.json", "train.lock"}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
