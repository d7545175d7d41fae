"""The command line: readable one-line errors, eval reproduces training, predict works."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from charjax import charset, checkpoints, evaluate


def charjax(*args, **kw):
    return subprocess.run([sys.executable, "-m", "charjax", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, **kw)


def _assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "flag,fragments",
    [
        ("--config.batch_sze=64", ["batch_sze", 'Did you mean "batch_size"']),
        ("--config.batch_size=abc", ["batch_size", "abc"]),
        ("--config.model.hiden=3", ["hiden"]),
    ],
)
def test_bad_override_is_one_readable_line(tmp_path, flag, fragments):
    result = charjax("train", "--config", "configs/default.py", "--workdir", str(tmp_path), flag)
    _assert_one_line_error(result, "charjax train: error:", *fragments)
    assert not list(tmp_path.iterdir()), "nothing may be written on a bad command line"


def test_missing_config_and_unknown_command():
    _assert_one_line_error(charjax("train", "--workdir", "x"), "--config")
    _assert_one_line_error(charjax("fly"), "unknown command 'fly'")


def test_unknown_dataset_is_one_readable_line(tmp_path):
    result = charjax("train", "--config", "configs/default.py", "--workdir", str(tmp_path),
                     "--config.data.source=mnist-please")
    _assert_one_line_error(result, "'mnist-please'", "unknown dataset spec")


def test_eval_reproduces_the_test_accuracy_of_training(trained_run, tmp_path):
    workdir, result = trained_run
    out = tmp_path / "eval.json"
    run = charjax("eval", "--workdir", str(workdir), "--dataset", "synthetic", "--json", str(out))
    assert run.returncode == 0, run.stderr
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"accuracy", "loss", "loss_of", "top5_accuracy", "n", "per_class",
                            "most_confused"}
    errors = round((1 - metrics["accuracy"]) * metrics["n"])
    assert sum(n for _, _, n in metrics["most_confused"]) <= errors
    if errors:
        true, predicted, count = metrics["most_confused"][0]
        assert true != predicted and count >= 1
        assert f"most confused (true->predicted): {true}->{predicted} {count}" in run.stdout
    assert metrics["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(result["test_loss"], rel=1e-4)
    assert metrics["top5_accuracy"] >= metrics["accuracy"]
    assert set(metrics["per_class"]) <= set(charset.CLASSES)
    assert f"{result['test_accuracy']:.4f}" in run.stdout


def test_eval_of_an_empty_workdir_is_one_readable_line(tmp_path):
    _assert_one_line_error(charjax("eval", "--workdir", str(tmp_path), "--dataset", "synthetic"),
                           str(tmp_path), "charjax train")


def test_predict_names_the_right_character_for_a_known_image(trained_run, tmp_path):
    from charjax import framing

    workdir, _ = trained_run
    state, config = checkpoints.load_for_inference(workdir)
    data = evaluate.load_eval_data("synthetic", config, "test")
    seen = np.stack([framing.prepare(x, framing.of_config(config.data)).pixels
                     for x in data.images])
    probs = evaluate.predict_probabilities(state, seen)
    right = np.flatnonzero(probs.argmax(-1) == data.labels)
    assert right.size, "the tiny run should get some test images right"
    i = int(right[0])
    # dark ink on white paper, as a user would scan it; predict must invert it back
    path = tmp_path / "known.png"
    Image.fromarray(255 - data.images[i, ..., 0]).convert("RGB").save(path)
    run = charjax("predict", "--workdir", str(workdir), "--top_k", "3", str(path))
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    assert line.startswith(f"{path}: {charset.index_to_char(int(data.labels[i]))} ")
    assert len(line.split(": ", 1)[1].split("  ")) == 3


def test_predict_an_unreadable_image_is_one_readable_line(trained_run, tmp_path):
    workdir, _ = trained_run
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    _assert_one_line_error(charjax("predict", "--workdir", str(workdir), str(bad)), str(bad))

