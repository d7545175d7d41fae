"""The Python API and `charjax predict`: any image in, the framing of the run, bad files apart."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

import charjax
from charjax import charset, checkpoints, evaluate, framing
from charjax.errors import DataError


@pytest.fixture(scope="module")
def rec(trained_run):
    return charjax.Recognizer.load(trained_run[0])


def _glyph(rec, index=0):
    """A test image the run gets right after preparation, and its label: of those, the ones
    it is surest of first, so that resampling the image cannot flip a near-tie of the tiny
    run's answers."""
    data = evaluate.load_eval_data("synthetic", rec.config, "test")
    prepared = np.stack([framing.prepare(x, rec.framing).pixels for x in data.images[:64]])
    probabilities = rec.probabilities(prepared)
    ranked = np.sort(probabilities, axis=-1)
    margin = ranked[:, -1] - ranked[:, -2]
    right = np.flatnonzero(probabilities.argmax(-1) == data.labels[:64])
    assert right.size > index, "the tiny run should get some test images right"
    i = int(right[np.argsort(-margin[right], kind="stable")][index])
    return data.images[i, ..., 0], charset.index_to_char(int(data.labels[i]))


def test_load_exposes_classes_config_and_framing(rec, trained_run):
    assert rec.classes == tuple(charset.CLASSES)
    assert rec.config.model.name == "tutorial"
    assert rec.framing == rec.config.data.framing
    assert rec.info()["test_accuracy"] == pytest.approx(trained_run[1]["test_accuracy"])


def test_probabilities_are_the_checkpoints(rec, trained_run):
    state, config = checkpoints.load_for_inference(trained_run[0])
    images = evaluate.load_eval_data("synthetic", config, "test").images[:10]
    np.testing.assert_allclose(rec.probabilities(images),
                               evaluate.predict_probabilities(state, images), atol=1e-5)


def test_any_size_dtype_and_file_gives_the_same_answer(rec, tmp_path):
    glyph, char = _glyph(rec)
    big = np.asarray(Image.fromarray(255 - glyph).resize((200, 200), Image.Resampling.BICUBIC))
    path = tmp_path / "big.png"
    Image.fromarray(big).convert("RGB").save(path)
    answers = rec.predict([glyph, glyph.astype(np.float32) / 255, big, str(path), path], top_k=3)
    assert len(answers) == 5
    for top in answers:
        assert len(top) == 3 and top[0][0] == char
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    (alone,) = rec.predict(glyph, top_k=1)  # one image, not a list
    assert alone[0][0] == answers[0][0][0] and alone[0][1] == pytest.approx(answers[0][0][1])
    assert len(rec.predict(np.stack([glyph] * 3))) == 3  # a batch array


def test_batches_are_padded_to_a_few_compiled_sizes(rec):
    glyph, _ = _glyph(rec)
    rec._logits.clear_cache()
    for n in (1, 2, 3, 5, 8, 1):
        rec.predict([glyph] * n)
    assert rec._logits._cache_size() == 2  # batch sizes 1 and 8 only


def test_a_bad_file_is_reported_and_the_others_still_answered(rec, tmp_path):
    glyph, char = _glyph(rec)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    results = rec.recognize([glyph, str(bad), str(tmp_path / "missing.png")])
    assert results[0].top[0][0] == char and results[0].error is None
    assert "bad.png" in results[1].error and not results[1].top
    assert "no such file" in results[2].error
    with pytest.raises(DataError, match="bad.png"):
        rec.predict([glyph, str(bad)])
    with pytest.raises(ValueError, match="top_k"):
        rec.predict(glyph, top_k=0)
    assert "blank" in rec.recognize(np.zeros((30, 30)))[0].warning


def test_predict_command_json_show_and_exit_status(rec, trained_run, tmp_path):
    glyph, char = _glyph(rec)
    good = tmp_path / "good.png"
    Image.fromarray(255 - glyph).save(good)  # dark ink on white paper, as scanned
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out, show = tmp_path / "answers.json", tmp_path / "seen"
    run = subprocess.run(
        [sys.executable, "-m", "charjax", "predict", "--workdir", str(trained_run[0]),
         "--json", str(out), "--show", str(show), str(good), str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert run.stdout.startswith(f"{good}: {char} ")
    assert "bad.png" in run.stderr and "Traceback" not in run.stderr
    answers = json.loads(out.read_text())
    assert answers[0]["top"][0][0] == char and answers[1]["error"]
    seen = sorted(show.iterdir())
    assert [p.name for p in seen] == ["0000_good.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(seen[0])),
                                  rec.prepare(str(good)).pixels[..., 0])
