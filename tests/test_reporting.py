"""Reporter: event files, projector, PNGs and console lines, read back from disk.

A tiny random model and random images: what is checked is what gets written, not how
well anything learns.
"""

import io
import logging
import math
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
import tbevents
from conftest import default_config
from PIL import Image

from charjax import charset, preview, reporting
from charjax.reporting import plots, projector
from charjax.reporting import tensorboard as tb
from charjax.state import create_train_state

HIDDEN = 16  # the tiny model's feature width, so the projector's columns are checkable
N_VAL, N_TEST, PROJECTOR_MAX = 130, 120, 100


def _config(**report):
    config = default_config(num_epochs=3, eval_batch_size=64, **{
        "model.tutorial.hidden": HIDDEN, "augment.zoom_range": (0.9, 1.1),
        "report.projector_max": PROJECTOR_MAX})
    for key, value in report.items():
        config.report[key] = value
    return config


def _images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8), rng.integers(0, 62, n)


def _history(epochs=3):
    return [
        {"epoch": e, "train_loss": 4.0 / e, "train_accuracy": 0.2 * e, "val_loss": 4.5 / e,
         "val_accuracy": 0.15 * e, "seconds": 1.5}
        for e in range(1, epochs + 1)
    ]


@pytest.fixture(scope="module")
def state():
    return create_train_state(_config(), jax.random.key(0))


@pytest.fixture(scope="module")
def run(state, tmp_path_factory):
    """One reported 'training' of three epochs of 10 steps, the projector every 2 epochs."""
    workdir = str(tmp_path_factory.mktemp("reported"))
    val, test = _images(N_VAL, 1), _images(N_TEST, 2)
    samples, sample_labels = _images(20, 3)
    history = _history()
    with reporting.Reporter(workdir, _config(projector_every_epochs=2)) as reporter:
        reporter.start(samples / 255.0, sample_labels, validation=val)
        for step in range(1, 31):
            if step % 5 == 0:
                reporter.step(step, {"loss": 5.0 - step / 10})
            if step % 10 == 0:
                reporter.epoch(step // 10, history[step // 10 - 1], step=step,
                               learning_rate=1e-3, images_per_s=1234.5, state=state)
        probabilities = np.random.default_rng(9).dirichlet(np.ones(62), N_TEST)
        written = reporter.finish(history, 3, state, *test, probabilities, step=30,
                                  summary={"test_accuracy": 0.42, "test_loss": 3.2,
                                           "best_val_accuracy": 0.45})
    return workdir, written, val, test


def test_epoch_and_step_scalars_are_in_the_event_files(run):
    workdir, *_ = run
    scalars = tbevents.read_scalars(os.path.join(workdir, "tb"))
    history = _history()
    for tag, key in [("train/loss", "train_loss"), ("train/accuracy", "train_accuracy"),
                     ("val/loss", "val_loss"), ("val/accuracy", "val_accuracy")]:
        assert [s for s, _ in scalars[tag]] == [10, 20, 30], tag
        np.testing.assert_allclose([v for _, v in scalars[tag]], [e[key] for e in history],
                                   rtol=1e-6)
    assert [s for s, _ in scalars["train/step_loss"]] == [5, 10, 15, 20, 25, 30]
    np.testing.assert_allclose(scalars["train/step_loss"][0][1], 4.5)
    assert [v for _, v in scalars["train/epoch"]] == [1, 2, 3]
    assert scalars["train/learning_rate"][0] == (10, pytest.approx(1e-3))
    assert scalars["train/images_per_s"][-1] == (30, pytest.approx(1234.5))
    assert scalars["time/epoch_seconds"][0] == (10, 1.5)


def test_config_text_and_the_input_grid_are_logged(run):
    workdir, *_ = run
    tags = tbevents.summary_tags(os.path.join(workdir, "tb"))
    assert {"config/text_summary", "inputs/augmented"} <= tags
    images = [
        value.image
        for path in tbevents.event_files(os.path.join(workdir, "tb"))
        for event in tbevents.read_events(path) if event.HasField("summary")
        for value in event.summary.value if value.tag == "inputs/augmented"
    ]
    grid = Image.open(io.BytesIO(images[0].encoded_image_string))
    cell_w, cell_h = preview.cell_size(48, 48)
    assert grid.size == (16 * cell_w, 2 * cell_h)  # 20 samples, 16 a row


def test_hparams_hold_the_final_numbers(run):
    workdir, *_ = run
    scalars = tbevents.read_scalars(os.path.join(workdir, "tb", "hparams"))
    assert scalars["hparam/test_accuracy"] == [(30, pytest.approx(0.42))]
    assert scalars["hparam/best_val_accuracy"] == [(30, pytest.approx(0.45))]
    assert "_hparams_/session_start_info" in tbevents.summary_tags(
        os.path.join(workdir, "tb", "hparams"))


def _read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_projector_files_agree(run, state):
    workdir, written, val, _ = run
    logdir = os.path.join(workdir, "tb")
    with open(os.path.join(logdir, projector.CONFIG_NAME)) as f:
        config = f.read()
    # the periodic one at epoch 2 and the final one of the best epoch (3)
    assert re.findall(r'tensor_name: "([^"]+)"', config) == ["validation:00002", "best:00003"]
    assert written["projector"] == os.path.join(logdir, "00003", "best")
    for sub in re.findall(r'tensor_path: "([^"]+)/tensors.tsv"', config):
        folder = os.path.join(logdir, sub)
        tensors = np.loadtxt(os.path.join(folder, "tensors.tsv"), delimiter="\t", ndmin=2)
        header, *rows = _read_tsv(os.path.join(folder, "metadata.tsv"))
        sprite = np.asarray(Image.open(os.path.join(folder, "sprite.png")))
        side = math.ceil(math.sqrt(PROJECTOR_MAX))
        assert tensors.shape == (PROJECTOR_MAX, HIDDEN)
        assert len(rows) == PROJECTOR_MAX
        assert header == ["true", "predicted", "correct", "kind"]
        assert sprite.shape == (side * 48, side * 48) and sprite.shape[0] <= 8192
        np.testing.assert_array_equal(sprite[:48, 48:96], val[0][1, ..., 0])  # 2nd thumbnail
        assert [r[0] for r in rows] == [charset.CLASSES[i] for i in val[1][:PROJECTOR_MAX]]
        assert all((r[2] == "yes") == (r[0] == r[1]) for r in rows)
    # the tensors are the sown penultimate features of those images
    features, _ = projector.penultimate_features(state, val[0][:3], batch_size=64)
    np.testing.assert_allclose(tensors[:3], features, rtol=1e-4, atol=1e-5)


def test_rewriting_a_projector_step_does_not_duplicate_it(tmp_path):
    images, labels = _images(10, 4)
    features = np.ones((10, 4))
    for _ in range(2):
        projector.write(str(tmp_path), features, images, labels, labels, step=1, tag="x")
    config = (tmp_path / projector.CONFIG_NAME).read_text()
    assert config.count("embeddings {") == 1


def test_sprite_limits():
    assert projector.max_thumbnails(48) == 170 * 170
    assert projector.sprite(np.zeros((10, 48, 48, 1), np.uint8)).shape == (192, 192)
    with pytest.raises(ValueError, match="projector_max"):
        projector.sprite(np.zeros((170 * 170 + 1, 48, 48, 1), np.uint8))
    with pytest.raises(ValueError, match="square"):
        projector.sprite(np.zeros((4, 48, 40, 1), np.uint8))


def test_pngs_exist_with_their_sizes(run):
    workdir, written, *_ = run
    assert set(written) == {"curves", "confusion", "errors", "projector"}
    assert Image.open(os.path.join(workdir, "curves.png")).size == plots.CURVES_SIZE
    assert Image.open(os.path.join(workdir, "confusion.png")).size == plots.CONFUSION_SIZE
    errors = Image.open(os.path.join(workdir, "errors.png"))
    errors.load()
    cell_w, cell_h = preview.cell_size(48, 48)
    assert errors.size == (16 * cell_w, 4 * cell_h)  # a random model: 64 mistakes or more


def test_most_confused_pairs_and_worst_errors():
    labels = np.array([0, 0, 0, 10, 10, 36])  # '0', '0', '0', 'A', 'A', 'a'
    predicted = np.array([0, 24, 24, 36, 10, 10])  # O for 0 twice, a for A, A for a
    matrix = plots.confusion_matrix(labels, predicted)
    assert matrix.sum() == 6 and np.trace(matrix) == 2
    assert plots.most_confused(matrix, 2) == [("0", "O", 2, pytest.approx(2 / 3)),
                                              ("A", "a", 1, 0.5)]
    probabilities = np.full((3, 62), 0.001)
    probabilities[0, 5], probabilities[1, 7], probabilities[2, 9] = 0.6, 0.9, 0.5
    assert plots.worst_errors(probabilities, np.array([5, 1, 2]), 5).tolist() == [1, 2]


def test_console_lines_and_progress_have_no_control_characters(tmp_path, monkeypatch):
    stderr = io.StringIO()  # what a CI log captures: not a terminal
    monkeypatch.setattr(sys, "stderr", stderr)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("charjax")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        reporter = reporting.Reporter(str(tmp_path), _config(tensorboard=False, plots=False))
        reporter.start()
        with reporter.progress(3, "epoch 1", interval=0.0) as bar:
            for _ in range(3):
                bar.set_postfix(loss=1.0, refresh=False)
                bar.update(1)
        with reporter.progress(3, "quiet") as bar:  # shorter than the interval: no line
            bar.update(3)
        reporter.epoch(1, _history()[0], step=10, images_per_s=999.0, best=True)
        reporter.epoch(2, _history()[1], step=20, best=False)
        reporter.close()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    text = stream.getvalue() + stderr.getvalue()
    assert "epoch 1: 3/3 (100%)" in text and "loss=1" in text and "quiet" not in text
    line = next(line for line in text.splitlines() if line.startswith("epoch 1/3:"))
    assert "train loss 4.0000 acc 0.2000 | val loss 4.5000 acc 0.1500 *" in line
    assert "1.5 s, 999 img/s" in line and "ETA" in line
    line = next(line for line in text.splitlines() if line.startswith("epoch 2/3:"))
    assert "acc 0.3000 |" in line and "*" not in line  # the trainer said: not the best
    assert "\r" not in text and "\x1b" not in text
    assert os.listdir(tmp_path) == []  # tensorboard and plots off: nothing written


def test_resumed_run_hides_what_the_interrupted_one_logged_after_its_checkpoint(tmp_path):
    first = reporting.Reporter(str(tmp_path), _config())
    first.start()
    for epoch, record in enumerate(_history(), start=1):  # crashed after logging epoch 3 ...
        first.epoch(epoch, record, step=10 * epoch)
    first.close()
    resumed = reporting.Reporter(str(tmp_path), _config())
    resumed.start(step=20)  # ... but its checkpoint is of epoch 2
    resumed.epoch(3, {**_history()[2], "val_accuracy": 0.99}, step=30)
    resumed.close()
    points = tbevents.read_scalars(os.path.join(tmp_path, "tb"))["val/accuracy"]
    assert points == [(10, pytest.approx(0.15)), (20, pytest.approx(0.3)),
                      (30, pytest.approx(0.99))]


def test_only_the_first_host_writes(tmp_path, monkeypatch, state):
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    reporter = reporting.Reporter(str(tmp_path), _config())
    reporter.start(validation=_images(5, 0))
    reporter.step(1, {"loss": 1.0})
    reporter.epoch(1, _history()[0], step=1, state=state)
    assert reporter.finish(_history(1), 1, state, *_images(5, 1), np.ones((5, 62)) / 62) == {}
    reporter.close()
    assert not reporter.enabled and os.listdir(tmp_path) == []
    assert reporting.Reporter(str(tmp_path), _config(), enabled=False).enabled is False


def test_hparams_flattening():
    flat = tb.flatten_hparams(_config())
    assert flat["augment.zoom_range"] == "[0.9, 1.1]" and flat["report.plots"] is True
    assert flat["num_epochs"] == 3


def test_corrupt_event_file_is_reported(tmp_path):
    writer = tb.open_writer(str(tmp_path))
    writer.add_scalar("a", 1.0, 1)
    writer.close()
    (path,) = tbevents.event_files(str(tmp_path))
    data = bytearray(open(path, "rb").read())
    data[-6] ^= 0xFF  # a byte inside the last record's payload
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        tbevents.read_scalars(str(tmp_path))


def test_model_inputs_normalise_and_augment():
    images, _ = _images(4, 5)
    plain = reporting.model_inputs(images, None, jax.random.key(0))
    np.testing.assert_allclose(plain, images / 255.0, rtol=1e-6)
    cfg = default_config(**{"augment.enabled": True}).augment
    warped = reporting.model_inputs(images, cfg, jax.random.key(0))
    assert warped.shape == images.shape and warped.dtype == np.float32
    assert not np.allclose(warped, plain)


def test_plots_load_matplotlib_late_and_never_pyplot(tmp_path):
    """pyplot's global state must not leak into a user's process; matplotlib's import
    cost must not slow `charjax predict`, which imports the trainer."""
    code = f"""
import sys
from charjax import reporting
from charjax.reporting import plots
assert "matplotlib" not in sys.modules
plots.curves({_history()!r}, 2, {str(tmp_path / "c.png")!r})
assert "matplotlib" in sys.modules and "matplotlib.pyplot" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert Image.open(tmp_path / "c.png").size == plots.CURVES_SIZE
