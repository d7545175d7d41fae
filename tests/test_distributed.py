"""Data parallelism: 4 forced CPU devices and 2 processes train like 1 device."""

import json
import os
import socket
import subprocess
import sys

import cli
import pytest
from cli import run_many
from conftest import ROOT, tiny_overrides

# Only rounding differs (the order of the gradient reduction, the convolution kernels), but
# Adam turns rounding differences of near-zero gradients into updates of opposite sign, so
# the runs drift apart a little (measured, relative on the losses: 1.1e-4 in epoch 1, 1.3e-3
# after epoch 2). A wrong gradient average or a lost share of the batch is far outside.
FIRST_EPOCH_TOLERANCE, LATER_TOLERANCE = 5e-4, 5e-3


def _train_args(workdir, *flags):
    return ["train", "--config", "configs/default.py", "--workdir", str(workdir),
            *tiny_overrides(num_epochs=2), *flags]


def _train_cmd(workdir, *flags):
    return [sys.executable, "-m", "charjax", *_train_args(workdir, *flags)]


def _env(devices=None):
    env = dict(os.environ)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _assert_same_run(metrics, reference):
    (first, want), *later = zip(metrics["epochs"], reference["epochs"], strict=True)
    for key in ("train_loss", "val_loss"):
        assert first[key] == pytest.approx(want[key], rel=FIRST_EPOCH_TOLERANCE), key
    for key in ("train_accuracy", "val_accuracy"):
        assert first[key] == pytest.approx(want[key], abs=1e-6), key
    for got, want in later:
        for key in ("train_loss", "val_loss"):
            assert got[key] == pytest.approx(want[key], rel=LATER_TOLERANCE), key
    assert metrics["test_loss"] == pytest.approx(reference["test_loss"], rel=LATER_TOLERANCE)


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    """The command lines that run on 4 forced CPU devices, in one process (cli.run_many)."""
    tmp = tmp_path_factory.mktemp("four-devices")
    runs = run_many({
        "run": _train_args(tmp / "run"),
        "refused": _train_args(tmp / "refused", "--config.batch_size=30"),
        # ~90 queued steps once starved a device of host threads inside a collective
        # (XLA:CPU's rendezvous then aborts the process); the trainer bounds the queue.
        "long": ["train", "--config", "default", "--workdir", str(tmp / "long"),
                 *tiny_overrides(batch_size=4), "--config.report.tensorboard=False",
                 "--config.report.plots=False"],
    }, env=_env(4))
    return tmp, runs


def test_four_devices_follow_the_one_device_loss_curve(four_devices, trained_run):
    tmp, runs = four_devices
    assert runs["run"].returncode == 0, runs["run"].stderr
    assert "4 device(s)" in runs["run"].stderr
    _, reference = trained_run
    _assert_same_run(json.loads((tmp / "run" / "metrics.json").read_text()), reference)


def test_four_device_checkpoint_restores_on_one_device(four_devices):
    # the test split (62 images) does not fill whole batches of 4 devices: evaluation pads
    # and masks the last one, so 1 device and 4 must score the same weights identically
    tmp, _ = four_devices
    out = tmp / "eval.json"
    run = cli.run("eval", "--workdir", str(tmp / "run"), "--dataset", "synthetic",
                  "--json", str(out), env=_env())
    assert run.returncode == 0, run.stderr
    trained = json.loads((tmp / "run" / "metrics.json").read_text())
    assert json.loads(out.read_text())["accuracy"] == trained["test_accuracy"]


def test_batch_that_does_not_divide_over_the_devices_is_refused(four_devices):
    _, runs = four_devices
    cli.assert_one_line_error(runs["refused"],
                              "batch_size=30 must divide evenly over the 4 devices")


def test_four_cpu_devices_survive_a_long_epoch(four_devices):
    tmp, runs = four_devices
    assert runs["long"].returncode == 0, runs["long"].stderr[-2000:]
    assert "rendezvous" not in runs["long"].stderr
    epochs = json.loads((tmp / "long" / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1]


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
