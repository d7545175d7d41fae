"""The Python API and `charjax predict`: any image in, the framing of the run, bad files apart."""

import json
import shutil
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

import charjax
from charjax import charset, checkpoints, evaluate, framing, inference, inputs
from charjax.datasets import drawn, synthetic
from charjax.errors import CheckpointError, DataError, InputWarning


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


def _top_by_hand(rec):
    """image, k -> its top-k computed apart from charjax.inference: the Flax model applied
    to the prepared pixels / 255 with the checkpoint's weights (its moving average, where it
    kept one), and a float64 softmax."""
    state, _ = checkpoints.load_for_inference(rec.workdir)
    variables = {"params": state.params if state.ema_params is None else state.ema_params,
                 **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
    apply = jax.jit(rec.predictor.model.apply, static_argnames="train")

    def top(image, k):
        x = rec.prepare(image).pixels[None].astype(np.float32) / 255
        logits = np.asarray(apply(variables, x, train=False), np.float64)[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        best = np.argsort(-p, kind="stable")[:k]
        return [charset.CLASSES[i] for i in best], p[best]

    return top


def test_any_size_dtype_and_file_gives_the_same_answer(rec, tmp_path):
    glyph, char = _glyph(rec)
    big = np.asarray(Image.fromarray(255 - glyph).resize((200, 200), Image.Resampling.BICUBIC))
    path = tmp_path / "big.png"
    Image.fromarray(big).convert("RGB").save(path)
    images = [glyph, glyph.astype(np.float32) / 255, big, str(path), path]
    answers = rec.predict(images, top_k=3)
    assert len(answers) == 5
    by_hand = _top_by_hand(rec)
    for image, top in zip(images, answers, strict=True):
        assert len(top) == 3 and top[0][0] == char
        chars, probs = by_hand(image, 3)
        assert [c for c, _ in top] == chars
        np.testing.assert_allclose([p for _, p in top], probs, rtol=1e-5, atol=1e-7)
    (alone,) = rec.predict(glyph, top_k=1)  # one image, not a list
    assert alone[0][0] == answers[0][0][0] and alone[0][1] == pytest.approx(answers[0][0][1])
    assert len(rec.predict(np.stack([glyph] * 3))) == 3  # a batch array


def test_a_folder_image_is_the_input_predict_and_serve_make_of_the_file(rec, tmp_path):
    """One path to the model's input: for a line-framed run, an image file read by
    folder:PATH, given to predict and posted to the server is the same 48x48 input."""
    import base64
    import io

    from starlette.testclient import TestClient

    from charjax import datasets, serve

    config = rec.config.copy_and_resolve_references()
    config.data.framing, config.data.cache_dir = "line", str(tmp_path / "cache")
    model, variables = rec.predictor.model, rec.predictor.variables
    line = charjax.Recognizer(inference.Predictor(model, variables, config))
    ink = 255 - drawn.render("g", 160, 0.5, 7.0)[10:130]  # not square, not the frame's size
    paper = np.array([235, 228, 210]) - ink[..., None] / 255 * np.array([200, 190, 150])
    (tmp_path / "d").mkdir()
    paths = [tmp_path / "d" / "g_0.png", tmp_path / "d" / "g_1.jpg"]
    for path in paths:
        Image.fromarray(paper.astype(np.uint8)).save(path, quality=90)
    from_folder = datasets.load(f"folder:{tmp_path / 'd'}", config.data).images
    predicted = [r.pixels for r in line.recognize([str(p) for p in paths])]
    client = TestClient(serve.create_app(line))
    for path, folder_input, predict_input in zip(paths, from_folder, predicted, strict=True):
        body = client.post("/predict", files={"file": (path.name, path.read_bytes())}).json()
        png = base64.b64decode(body["input_png"].split(",", 1)[1])
        served = np.asarray(Image.open(io.BytesIO(png)))[..., None]
        assert folder_input.shape == (48, 48, 1) and folder_input.max() > 200
        np.testing.assert_array_equal(folder_input, predict_input)
        np.testing.assert_array_equal(folder_input, served)


def test_batches_are_padded_to_a_few_compiled_sizes(rec):
    glyph, _ = _glyph(rec)
    inference.outputs.clear_cache()
    for n in (1, 2, 3, 5, 8, 1):
        rec.predict([glyph] * n)
    assert inference.outputs._cache_size() == 2  # batch sizes 1 and 8 only


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


def test_one_rule_for_arrays_and_out_of_range_is_an_error(rec):
    glyph, char = _glyph(rec)
    same = [glyph, glyph.astype(np.int64), glyph.astype(np.float64) / 255, glyph > 127]
    assert {top[0][0] for top in rec.predict(same)} == {char}
    cases = [
        (glyph.astype(np.float32), "float pixels must be in 0..1, got 0..255"),  # not rescaled
        (-glyph.astype(np.float32) / 255, "float pixels must be in 0..1"),
        (glyph.astype(np.int32) * 2, "integer pixels must be in 0..255"),  # not clipped
        (glyph.astype(np.int16) - 1, "integer pixels must be in 0..255, got -1"),
        (np.full((20, 20), np.nan), "NaN or infinite"),
        (np.zeros((1, 20, 20, 5)), "[H, W] or [H, W, 1|2|3|4]"),  # a batch of one
    ]
    for array, words in cases:
        with pytest.raises(DataError, match=words.replace("[", r"\[").replace("|", r"\|")):
            rec.predict(array)
        (result,) = rec.recognize(array)
        assert words in result.error and not result.top  # reported, not answered


def test_what_is_not_an_image_is_a_type_error_saying_what_to_pass(rec, tmp_path):
    glyph, _ = _glyph(rec)
    path = tmp_path / "g.png"
    Image.fromarray(glyph).save(path)
    for bad, words in ((path.read_bytes(), "got bytes: pass a path, an array or a PIL image"),
                       (None, "got None"),
                       ([[0, 255], [255, 0]], "nested list"),
                       ([glyph, None], "image 1: got None"),
                       ({"pixels": glyph}, "got dict"),
                       (np.array([["a", "b"]]), "must hold numbers")):
        with pytest.raises(TypeError, match=words):
            rec.predict(bad)
        with pytest.raises(TypeError, match=words):
            rec.recognize(bad)


def test_blank_and_noise_are_answered_with_a_warning_in_every_api(rec):
    glyph, _ = _glyph(rec)
    noise = np.random.default_rng(0).integers(0, 256, (48, 48)).astype(np.uint8)
    blank = np.zeros((30, 30), np.float32)
    results = rec.recognize([glyph, blank, noise])
    assert results[0].warning is None
    assert "blank" in results[1].warning and "noise" in results[2].warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers = rec.predict([glyph, blank, noise])
    assert len(answers) == 3 and all(len(top) == 3 for top in answers)  # still answered
    said = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert len(said) == 2 and said[0].startswith("image 1: blank") and "noise" in said[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.predict(glyph)  # a character: no warning


def test_noise_is_told_from_characters_with_a_margin(cache_dir):
    """The calibration of `inputs.is_noise`: no character the generator draws (both framings)
    or a pen draws (any size, 1 to 14 pixel pens) is noise; random pixels of every kind are."""
    characters = [*synthetic.load(620, 0, framing="fit", cache_dir=cache_dir).images[..., 0],
                  *synthetic.load(310, 1, framing="line", cache_dir=cache_dir).images[..., 0]]
    characters += [drawn.render(c, 280, size, pen) for c in drawn.CHARACTERS[::3]
                   for size in drawn.SIZES for pen in drawn.PENS]
    characters += [drawn.render(c, 60, 0.5, 1.0) for c in drawn.CHARACTERS]  # thinnest pen
    ink = [framing.ink_image(inputs._small(c))[0] for c in characters]
    lowest = min(inputs.neighbour_correlation(x) for x in ink)
    assert lowest > 1.4 * inputs.NOISE_CORRELATION, lowest
    rng = np.random.default_rng(0)
    noise = []
    for size in (28, 48, 280, 1000):
        noise.append(rng.integers(0, 256, (size, size)).astype(np.uint8))
        noise.append(rng.random((size, size)))
        noise.append(np.clip(rng.normal(0.5, 0.15, (size, size)), 0, 1))
        noise += [(rng.random((size, size)) < density) for density in (0.01, 0.1, 0.5)]
    assert all(inputs.is_noise(inputs.check_array(x)) for x in noise)
    highest = max(inputs.neighbour_correlation(framing.ink_image(inputs._small(x))[0])
                  for x in noise)
    assert highest < 0.75 * inputs.NOISE_CORRELATION, highest


def test_a_step_that_is_not_there_is_named_not_called_damaged(trained_run, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint of epoch 999; it holds epochs 1, 2"):
        charjax.Recognizer.load(trained_run[0], step=999)
    assert charjax.Recognizer.load(trained_run[0], step=1).config.model.name == "tutorial"


def test_loading_a_run_whose_best_checkpoint_is_gone_names_the_epoch_used(
        trained_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    best = trained_run[1]["best_epoch"]
    shutil.rmtree(run / "checkpoints" / str(best))
    with caplog.at_level("WARNING", logger="charjax"):
        charjax.Recognizer.load(run)
    assert any(f"best epoch ({best}) is missing; using epoch" in r.getMessage()
               for r in caplog.records), caplog.text
