"""`charjax adapt`: fine-tuning a run on its corrections (charjax/adapt.py)."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from charjax import adapt, charset
from charjax.datasets import folder, synthetic


def _run_copy(trained_run, tmp_path):
    workdir, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("tb", "*.lock"))
    return copy


def _write_corrections(run, chars: str, per_class: int = 2) -> None:
    labels = np.repeat([charset.char_to_index(c) for c in chars], per_class)
    images = synthetic.render_styled(
        labels, np.random.default_rng(0), "fit", synthetic.writer_style(3),
        glyph=synthetic.writer_glyphs(3)[labels],
    )
    out = run / "corrections"
    out.mkdir()
    for i, (label, image) in enumerate(zip(labels, images, strict=True)):
        name = f"{folder.label_token(charset.CLASSES[label])}_{i:04d}.png"
        Image.fromarray(image).save(out / name)


def test_repeat_to_gives_every_correction_its_copies():
    images, labels = np.zeros((10, 48, 48, 1), np.uint8), np.arange(10)
    _, repeated = adapt.repeat_to(images, labels, 105, seed=0)
    assert len(repeated) == 105 and np.bincount(repeated).min() == 10
    assert len(adapt.repeat_to(images, labels, 4, seed=0)[1]) == 10  # never fewer than all


def test_the_epoch_has_fixed_shapes_until_the_corrections_outgrow_their_share():
    own, slots = adapt.training_mix(128, 10)
    assert own + slots == adapt.STEPS * 128 and abs(slots - adapt.STEPS * 128 / 3) < 1
    assert adapt.training_mix(128, 500) == (own, slots)  # same arrays: compiled once
    assert adapt.training_mix(128, 5000) == (own, 5000)


def test_free_out_dir_skips_runs_already_there(tmp_path):
    run = tmp_path / "run"
    assert adapt.free_out_dir(run) == str(tmp_path / "run-me")
    (tmp_path / "run-me" / "checkpoints").mkdir(parents=True)
    assert adapt.free_out_dir(str(run) + "/") == str(tmp_path / "run-me-2")


def test_adapt_writes_a_run_every_command_reads(trained_run, tmp_path, monkeypatch):
    from charjax import cli
    from charjax.recognizer import Recognizer

    run = _run_copy(trained_run, tmp_path)
    _write_corrections(run, "aAbB0OlI")
    monkeypatch.setattr(adapt, "STEPS", 8)
    monkeypatch.setattr(adapt, "HELD_OUT", 62)
    out = tmp_path / "run-me"
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["charjax", "adapt", f"--workdir={run}", f"--out={out}"])
    assert exit_info.value.code in (0, None)
    assert os.path.isfile(out / "metrics.json") and os.path.isdir(out / "checkpoints")
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1  # one short epoch: 8 batches of the run's 16 images
    assert sum(json.loads((out / "class_counts.json").read_text())["train"]) == 8 * 16
    assert not (out / "tb").exists() and not (out / "curves.png").exists()
    rec = Recognizer.load(out)
    assert rec.framing == Recognizer.load(run).framing
    assert len(rec.predict(np.zeros((48, 48), np.uint8) + 1)[0]) == 3
    # adapted weights differ from the run's
    before = Recognizer.load(run).predictor.variables["params"]
    after = rec.predictor.variables["params"]
    import jax
    moved = jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()), before, after)
    assert max(jax.tree_util.tree_leaves(moved)) > 0


def test_too_few_corrections_is_one_clear_line(trained_run, tmp_path, capsys):
    from charjax import cli

    run = _run_copy(trained_run, tmp_path)
    _write_corrections(run, "aA", per_class=2)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["charjax", "adapt", f"--workdir={run}", f"--out={tmp_path / 'me'}"])
    assert exit_info.value.code == 1
    errors = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert len(errors) == 1 and errors[0].startswith("charjax adapt: error:")
    assert "4 correction(s)" in errors[0] and "at least 10" in errors[0]


def test_no_corrections_folder_says_how_to_make_some(trained_run, tmp_path):
    run = _run_copy(trained_run, tmp_path)
    with pytest.raises(adapt.AdaptError, match="no corrections yet"):
        adapt.adapt(str(run), str(tmp_path / "me"), lambda config, out: {})


def test_serve_adapts_and_then_reads_with_the_adapted_weights(trained_run, tmp_path,
                                                              monkeypatch):
    from starlette.testclient import TestClient

    from charjax.recognizer import Recognizer
    from charjax.serve.app import create_app

    run = _run_copy(trained_run, tmp_path)
    rec = Recognizer.load(run)
    client = TestClient(create_app(rec))
    _write_corrections(run, "aA", per_class=2)
    few = client.post("/adapt")
    assert few.status_code == 409 and "at least 10" in few.json()["error"]
    for path in (run / "corrections").iterdir():
        path.unlink()
    (run / "corrections").rmdir()
    _write_corrections(run, "aAbB0OlI")
    monkeypatch.setattr(adapt, "STEPS", 8)
    monkeypatch.setattr(adapt, "HELD_OUT", 62)
    probe = np.random.default_rng(0).integers(0, 256, (1, 48, 48, 1), np.uint8)
    before = rec.probabilities(probe)
    answer = client.post("/adapt")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["out"] == str(tmp_path / "run-me") and body["corrections"] == 16
    assert not np.allclose(rec.probabilities(probe), before)  # the adapted weights answer
    assert rec.workdir == str(run)  # corrections still go to the run itself
    assert client.post("/adapt").json()["out"] == str(tmp_path / "run-me-2")
