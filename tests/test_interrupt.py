"""Ctrl-C and SIGTERM mid-run: exit 130 / 143, the checkpoint in flight finished, resume exact."""

import json
import os
import signal

import jax
import numpy as np
import pytest
from cli import run_many
from conftest import ROOT, tiny_config, tiny_overrides

from charjax import checkpoints, cli, train

EPOCHS = 6
# Reports (TensorBoard, plots) cost seconds and play no part in stopping and resuming.
QUIET = {"report.tensorboard": False, "report.plots": False}

# Before each command line (cli.run_many runs each in a fresh fork of one process that has
# imported charjax): record what the previous command left in the workdir, then patch the
# run so that once it has saved a checkpoint it sends itself SIGINT at the 3rd step of the
# next epoch: the signal lands mid-epoch, with steps queued on the device and the save
# possibly in flight.
_RECORD = """
import json, os
workdir = {workdir!r}
left = {{"steps": sorted(os.listdir(os.path.join(workdir, "checkpoints"))),
         "files": sorted(os.listdir(workdir))}} if os.path.isdir(workdir) else None
with open({out!r}, "w") as f:
    json.dump(left, f)
"""
_INTERRUPT = """
import os, signal
from charjax import checkpoints, train

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
                os.kill(os.getpid(), signal.SIGINT)
        return step_fn(*step_args)

    return counted

checkpoints.save = save
train.make_device_train_step = make_step
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
    argv = _argv(workdir)[1:]

    def record(name):
        return _RECORD.format(workdir=str(workdir), out=str(tmp_path / f"left-by-{name}.json"))

    cases = {"1": (argv, record("none") + _INTERRUPT)}
    cases |= {str(n): (argv, record(n - 1) + _INTERRUPT) for n in range(2, 6)}
    cases["resumed"] = (argv, record(5))
    runs = run_many(cases)
    for attempt in range(1, 6):
        proc = runs[str(attempt)]
        assert proc.returncode == 130, (attempt, proc.returncode, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("charjax train: error: interrupted (SIGINT)"), last
        assert "rerun the same command to resume" in last
        left = json.loads((tmp_path / f"left-by-{attempt}.json").read_text())
        steps = left["steps"]
        assert [s for s in steps if not s.isdigit()] == [], steps  # no half-written step
        assert max(int(s) for s in steps) == attempt  # each run kept the epoch it finished
        assert "metrics.json" not in left["files"] and "train.lock" not in left["files"]
    assert json.loads((tmp_path / "left-by-none.json").read_text()) is None

    resumed = runs["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from the checkpoint of epoch 5" in resumed.stderr
    assert (workdir / "metrics.json").exists()

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
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # as in a plain `python` process (a pytest-xdist worker ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.run(_argv(tmp_path / "w"))
        after = signal.getsignal(signal.SIGINT)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert exit_info.value.code == 143
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("charjax train: error: interrupted (SIGTERM)"), last
    # stopped in epoch 1, before its first checkpoint: no step, no metrics, no lock left
    left = set(os.listdir(tmp_path / "w"))
    assert "config.json" in left and not left & {"checkpoints", "metrics.json", "train.lock"}
    assert after is signal.default_int_handler  # put back as it was
