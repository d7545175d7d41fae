"""`charjax adapt`: fine-tuning a run on its corrections (charjax/adapt.py)."""

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


def test_repeat_to_share_gives_the_corrections_their_share():
    images, labels = np.zeros((10, 48, 48, 1), np.uint8), np.arange(10)
    _, repeated = adapt.repeat_to_share(images, labels, 200, 1 / 3, seed=0)
    assert len(repeated) == 100 and np.bincount(repeated).min() == 10


def test_adapt_writes_a_run_every_command_reads(trained_run, tmp_path, monkeypatch):
    from charjax import cli
    from charjax.recognizer import Recognizer

    run = _run_copy(trained_run, tmp_path)
    _write_corrections(run, "aAbB0OlI")
    monkeypatch.setattr(adapt, "EPOCHS", 1)
    monkeypatch.setattr(adapt, "GENERAL_SAMPLE", 62 * 3)
    out = tmp_path / "run-me"
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["charjax", "adapt", f"--workdir={run}", f"--out={out}"])
    assert exit_info.value.code in (0, None)
    assert os.path.isfile(out / "metrics.json") and os.path.isdir(out / "checkpoints")
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
