"""One writer per workdir: the lock, stale locks, concurrent runs; readers never disturb it."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import ROOT, tiny_overrides

from charjax import checkpoints, workdir
from charjax.errors import WorkdirError


def test_a_second_lock_names_the_holder_and_release_removes_the_file(tmp_path):
    lock = workdir.acquire(str(tmp_path))
    with pytest.raises(WorkdirError, match=rf"in use by .*pid {os.getpid()} on "):
        workdir.acquire(str(tmp_path))
    lock.release()
    assert not (tmp_path / workdir.LOCK_FILE).exists()
    workdir.acquire(str(tmp_path)).release()


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path, caplog):
    (tmp_path / workdir.LOCK_FILE).write_text(
        json.dumps({"pid": 999_999_999, "host": "gone", "since": 0}))
    with caplog.at_level("WARNING", logger="charjax.workdir"):
        lock = workdir.acquire(str(tmp_path))
    assert "taking over the lock left by pid 999999999 on gone" in caplog.text
    held = json.loads((tmp_path / workdir.LOCK_FILE).read_text())
    assert held["pid"] == os.getpid()
    lock.release()


def test_claim_removes_a_workdir_it_created_when_nothing_was_written(tmp_path):
    target = tmp_path / "new"
    with pytest.raises(RuntimeError), workdir.claim(str(target)):
        assert (target / workdir.LOCK_FILE).exists()
        raise RuntimeError("the run failed before writing")
    assert not target.exists()


def test_eval_leaves_a_half_written_step_of_a_running_training_alone(trained_run, tmp_path):
    run, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    in_flight = copy / "checkpoints" / "3.orbax-checkpoint-tmp"
    in_flight.mkdir()
    checkpoints.load_for_inference(copy)
    assert in_flight.exists(), "a reader must never delete a writer's step in progress"


def test_two_trainings_on_one_workdir_exactly_one_runs(tmp_path):
    target = tmp_path / "run"
    base = [sys.executable, "-m", "charjax", "train", "--config", "configs/default.py",
            "--workdir", str(target)]
    first = subprocess.Popen([*base, *tiny_overrides(num_epochs=2)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (target / workdir.LOCK_FILE).exists():
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = subprocess.run([*base, *tiny_overrides(num_epochs=2, learning_rate=0.01)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        line for line in second.stderr.strip().splitlines() if "error:" in line]
    assert f"in use by another `charjax train` (pid {first.pid} on " in second.stderr
    # the finished run is intact and is the first one's
    assert json.loads((target / "config.json").read_text())["learning_rate"] == 0.002
    metrics = json.loads((target / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert sorted(os.listdir(target / "checkpoints")) in (["1", "2"], ["2"], ["1", "2", "3"])
    assert not (target / workdir.LOCK_FILE).exists()
