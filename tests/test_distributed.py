"""Data parallelism: 4 forced CPU devices and 2 processes train like 1 device."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, tiny_overrides

TOLERANCE = 1e-4  # relative, on losses: only the order of the gradient reduction differs


def _train_cmd(workdir, *flags):
    return [sys.executable, "-m", "charjax", "train", "--config", "configs/default.py",
            "--workdir", str(workdir), *tiny_overrides(num_epochs=2), *flags]


def _env(devices=None):
    env = dict(os.environ)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _assert_same_run(metrics, reference):
    for got, want in zip(metrics["epochs"], reference["epochs"], strict=True):
        for key in ("train_loss", "val_loss"):
            assert got[key] == pytest.approx(want[key], rel=TOLERANCE), key
        for key in ("train_accuracy", "val_accuracy"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), key
    # evaluation pads the uneven last batch and masks it: counts must agree exactly
    assert metrics["test_accuracy"] == reference["test_accuracy"]
    assert metrics["test_loss"] == pytest.approx(reference["test_loss"], rel=TOLERANCE)


@pytest.fixture(scope="module")
def four_device_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("four-devices")
    run = subprocess.run(_train_cmd(workdir), cwd=ROOT, env=_env(4), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "4 device(s)" in run.stderr
    return workdir


def test_four_devices_follow_the_one_device_loss_curve(four_device_run, trained_run):
    _, reference = trained_run
    metrics = json.loads((four_device_run / "metrics.json").read_text())
    _assert_same_run(metrics, reference)


def test_four_device_checkpoint_restores_on_one_device(four_device_run):
    out = four_device_run / "eval.json"
    run = subprocess.run(
        [sys.executable, "-m", "charjax", "eval", "--workdir", str(four_device_run),
         "--dataset", "synthetic", "--json", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    trained = json.loads((four_device_run / "metrics.json").read_text())
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(trained["test_accuracy"])


def test_batch_that_does_not_divide_over_the_devices_is_refused(tmp_path):
    run = subprocess.run(_train_cmd(tmp_path, "--config.batch_size=30"), cwd=ROOT, env=_env(4),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "batch_size=30 must divide evenly over the 4 devices" in run.stderr
    assert "Traceback" not in run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed_train_like_one(trained_run, tmp_path):
    _, reference = trained_run
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            _train_cmd(tmp_path, f"--config.distributed.coordinator_address={address}",
                       "--config.distributed.num_processes=2",
                       f"--config.distributed.process_id={i}"),
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    assert "2 device(s), 2 process(es)" in outputs[0][1]
    _assert_same_run(json.loads((tmp_path / "metrics.json").read_text()), reference)


def test_four_cpu_devices_survive_a_long_epoch(tmp_path):
    # ~80 queued steps once starved a device of host threads inside a collective
    # (XLA:CPU's rendezvous then aborts the process); the trainer bounds the queue.
    cmd = [sys.executable, "-m", "charjax", "train", "--config", "configs/default.py",
           "--workdir", str(tmp_path), *tiny_overrides(**{"data.synthetic.num_images": 3720}),
           "--config.report.tensorboard=False", "--config.report.plots=False"]
    run = subprocess.run(cmd, cwd=ROOT, env=_env(4), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "rendezvous" not in run.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"][0]["epoch"] == 1
