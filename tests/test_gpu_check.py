"""benchmarks/gpu_check.sh: its smallest mode (`--cpu --smoke`) runs end to end on a machine
without a GPU and writes the JSON report and the markdown table with every part and
target; the log reading and the pass/fail rules are checked on given inputs through
`gpu_check.py --replay`, and the GPU step plan through `step_time.py --plan`. The scripts
run as the user runs them, in their own processes: nothing here imports benchmarks/."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
PARTS = ("default_cold", "default_warm", "epoch", "steps", "suite")  # the report's parts
TARGETS = 9


def _replay(tmp_path, parts: dict, mode: str = "gpu") -> tuple[dict, str]:
    """(gpu_check.json, gpu_check.md) of `gpu_check.py --replay` on a report of `parts`."""
    recorded = tmp_path / "recorded.json"
    recorded.write_text(json.dumps({"mode": mode, "started": "2025-01-01 12:00 UTC",
                                    "seconds": 300.0, "host": {"devices": "gpu:H100"},
                                    "parts": parts}))
    out = tmp_path / "replayed"
    proc = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "gpu_check.py"), str(out),
                           "--replay", str(recorded)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_smoke_run_writes_the_report(tmp_path):
    out = tmp_path / "report"
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--cpu",
                           "--smoke", str(out)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["mode"] == "smoke"
    assert {"started", "seconds", "host", "parts", "targets"} <= set(report)
    assert set(report["parts"]) == set(PARTS)
    parts = report["parts"]
    steps = parts["steps"]
    assert steps["status"] == "ok", (out / "gpu_check.log").read_text()[-3000:]
    assert [(r["framework"], r["batch_size"]) for r in steps["results"]] == [("charjax", 32)]
    assert steps["results"][0]["median_step_ms"] > 0
    for name in set(PARTS) - {"steps"}:
        assert parts[name]["status"] == "skipped"
    assert len(report["targets"]) == TARGETS
    table = (out / "gpu_check.md").read_text()
    assert "| target | goal | measured | pass | note |" in table
    assert "## Train steps" in table and "| charjax | float32 | 32 |" in table
    for target in report["targets"]:
        assert f"| {target['target']} |" in table


def test_run_log_gives_epochs_compile_overhead_and_accuracy(tmp_path):
    lines = [
        (3.0, "12:00:01 data synthetic: 119040 train, 14880 validation, 14880 test images"),
        (20.5, "12:00:19 epoch 1/3: train loss 2.1 acc 0.40 | val loss 1.2 acc 0.61 * | "
               "12.5 s, 9600 img/s | elapsed 00:12, ETA 00:24"),
        (23.0, "12:00:22 epoch 2/3: train loss 1.1 acc 0.66 | val loss 0.9 acc 0.70 * | "
               "2.5 s, 48000 img/s | elapsed 00:15, ETA 00:07"),
        (25.5, "12:00:24 epoch 3/3: train loss 0.9 acc 0.71 | val loss 0.8 acc 0.72 * | "
               "2.7 s, 45000 img/s | elapsed 00:17, ETA 00:00"),
        (26.0, "12:00:25 best epoch 3 (val accuracy 0.7200): test loss 0.8100, "
               "test accuracy 0.7150"),
    ]
    with_first_step = [*lines, (4.0, "12:00:05 first step compiled and run in 7.25 s")]
    report, table = _replay(tmp_path, {
        "default_cold": {"status": "ok", "seconds": 26.0, "lines": lines},
        "default_warm": {"status": "ok", "seconds": 26.0, "lines": with_first_step}})
    got = report["parts"]["default_cold"]
    assert "lines" not in got  # read, not copied
    assert got["epochs_s"] == [12.5, 2.5, 2.7]
    assert got["first_epoch_extra_s"] == pytest.approx(12.5 - 2.6)
    assert got["first_epoch_line_s"] == 20.5
    assert got["test_accuracy"] == 0.715
    assert got["first_step_s"] is None  # this log does not say it
    assert report["parts"]["default_warm"]["first_step_s"] == 7.25
    assert "| cold | ok | 26.0 | 9.9 | - | 12.5, 2.5, 2.7 | 0.715 |" in table


def _step(framework, precision, batch, ms):
    return {"framework": framework, "precision": precision, "batch_size": batch,
            "median_step_ms": ms, "images_per_s": batch * 1000 / ms}


def test_targets_pass_and_fail_against_the_goals(tmp_path):
    steps = []
    for precision in ("float32", "bf16"):
        for batch in (128, 512, 2048):
            steps.append(_step("charjax", precision, batch, 1.0))
            steps.append(_step("keras-jax", precision, batch, 1.2))
        steps.append(_step("torch-compile", precision, 2048, 0.8 if precision == "bf16" else 1.1))
    steps.append(_step("charjax+fast", "bf16", 2048, 0.7))
    steps[-3]["median_step_ms"] = 0.9  # keras-jax bf16 2048 faster than charjax
    parts = {
        "default_cold": {"status": "ok", "seconds": 59.0},
        "default_warm": {"status": "timeout", "seconds": 40.0},
        "epoch": {"results": [{"framework": "charjax", "precision": "float32",
                               "images": 119_040, "seconds": 0.31}]},
        "steps": {"results": steps},
        "suite": {"status": "ok", "passed": 300, "failed": 0, "errors": 0},
    }
    report, table = _replay(tmp_path, parts)
    got = {t["target"]: t for t in report["targets"]}
    assert len(got) == TARGETS
    assert got["default run, cold"]["pass"] is True
    assert got["default run, warm"]["pass"] is False
    assert got["one epoch, 119,040 images, augmented"]["pass"] is False
    assert got["step >= torch.compile, batch 2048, float32"]["pass"] is True
    bf16 = got["step >= torch.compile, batch 2048, bf16"]
    assert bf16["pass"] is False and bf16["value"] == "0.80x"
    assert "charjax+fast 1.14x" in bf16["note"]  # the variant that would pass
    assert got["charjax vs Keras on JAX, batch 512"]["pass"] is True
    assert got["charjax vs Keras on JAX, batch 2048"]["pass"] is False
    assert got["test suite on CUDA"]["pass"] is True
    assert "| step >= torch.compile, batch 2048, bf16 | >= 1.00x | 0.80x | FAIL |" in table
    # no data is neither a pass nor a failure
    report, table = _replay(tmp_path, {})
    assert len(report["targets"]) == TARGETS
    assert {t["pass"] for t in report["targets"]} == {None}
    rows = [line.split(" | ") for line in table.splitlines()
            if any(line.startswith(f"| {t['target']} |") for t in report["targets"])]
    assert len(rows) == TARGETS and {row[3] for row in rows} == {"-"}


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(BENCHMARKS, "step_time.py"), "--device",
                           "gpu", "--plan", *args], capture_output=True, text=True, timeout=120)


def test_gpu_step_plan_puts_the_target_rows_first_and_variants_last():
    proc = _plan("--batch-sizes", "128,2048", "--precision", "all",
                 "--frameworks", "torch,charjax", "--variants", "charjax+fast")
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = [tuple(line.split()) for line in proc.stdout.splitlines()
            if not line.startswith("skipping")]
    want = ["charjax", "charjax"]
    if importlib.util.find_spec("torch") is not None:
        want += ["torch", "torch"]
    assert [name for name, _, _ in jobs] == want + ["charjax+fast", "charjax+fast"]
    assert jobs[0] == ("charjax", "float32", "128,2048")
    assert jobs[-1] == ("charjax+fast", "bf16", "2048")  # a variant keeps its own batches
    proc = _plan("--frameworks", "mxnet")
    assert proc.returncode != 0 and "unknown framework 'mxnet'" in proc.stderr


def test_gpu_step_table_compares_each_row_with_keras_and_torch_compile(tmp_path):
    rows = [dict(_step("charjax", "bf16", 2048, 2.0), images_per_s=1.0, first_step_s=20.0),
            dict(_step("keras-jax", "bf16", 2048, 3.0), images_per_s=1.0, first_step_s=9.0),
            dict(_step("torch-compile", "bf16", 2048, 2.5), images_per_s=1.0,
                 first_step_s=30.0)]
    _, table = _replay(tmp_path, {"steps": {"status": "ok", "results": rows}})
    assert "| framework | precision | batch | median ms/step | images/s | vs Keras (JAX) |" \
        in table
    assert "| charjax | bf16 | 2048 | 2.000 | 1 | 1.50x | 1.25x | 20.0 |" in table


def test_suite_counts_from_the_summary_or_the_progress_line(tmp_path):
    done = [(1.0, "....F..s.. [100%]"),
            (2.0, "=========== 1 failed, 8 passed, 1 skipped in 12.34s ===========")]
    report, _ = _replay(tmp_path, {"suite": {"status": "failed", "seconds": 2.0, "lines": done}})
    suite = report["parts"]["suite"]
    assert {k: suite[k] for k in ("passed", "failed", "skipped", "errors")} == \
        {"passed": 8, "failed": 1, "skipped": 1, "errors": 0}
    assert suite["summary"].startswith("1 failed, 8 passed")
    stopped = [(1.0, "bringing up nodes..."), (9.0, "....E..F.s [ 40%]"), (12.0, "...")]
    report, _ = _replay(tmp_path, {"suite": {"status": "timeout", "seconds": 12.0,
                                             "lines": stopped}})
    suite = report["parts"]["suite"]
    assert {k: suite[k] for k in ("passed", "failed", "skipped", "errors")} == \
        {"passed": 10, "failed": 1, "skipped": 1, "errors": 1}
    assert "stopped" in suite["summary"]
