"""Preview grids: the PNG decodes at the documented size and shows the right pixels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import default_config
from PIL import Image

from charjax import charset, preview
from charjax.datasets.base import Dataset


def _dataset(n: int) -> Dataset:
    rng = np.random.default_rng(0)
    images = np.zeros((n, 48, 48, 1), np.uint8)
    images[:, 14:34, 20:28] = 255  # a bar, so augmentation visibly moves something
    return Dataset(images, rng.integers(0, charset.NUM_CLASSES, n).astype(np.int32))


@pytest.mark.parametrize(
    ("n", "columns", "grid"), [(40, 16, (16, 3)), (5, 16, (5, 1)), (12, 4, (4, 3))]
)
def test_grid_png_has_the_expected_size(tmp_path, n, columns, grid):
    ds = _dataset(n)
    path = tmp_path / "grid.png"
    preview.write_grid(ds.images, ds.labels, str(path), columns=columns)
    cell_w, cell_h = preview.cell_size(48, 48)
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert png.size == (grid[0] * cell_w, grid[1] * cell_h)


def test_thumbnail_pixels_survive_and_wrong_predictions_are_red(tmp_path):
    images = np.linspace(0, 1, 3 * 48 * 48, dtype=np.float32).reshape(3, 48, 48, 1)
    path = tmp_path / "pred.png"
    preview.write_grid(images, np.array([1, 2, 3]), str(path), predictions=np.array([1, 9, 3]))
    png = np.asarray(Image.open(path).convert("RGB"))
    cell_w, cell_h = preview.cell_size(48, 48)
    top_left = png[preview.PAD, preview.PAD]
    assert tuple(top_left) == (0, 0, 0)
    thumb = png[preview.PAD : preview.PAD + 96 : 2, preview.PAD : preview.PAD + 96 : 2, 0]
    np.testing.assert_array_equal(thumb, np.round(images[0, ..., 0] * 255).astype(np.uint8))
    label_strip = png[cell_h - preview.LABEL_HEIGHT - preview.PAD : cell_h]
    red = (label_strip[..., 0] > 200) & (label_strip[..., 1] < 120)
    assert not red[:, :cell_w].any()  # 1 -> 1 is right
    assert red[:, cell_w : 2 * cell_w].any()  # 2 -> 9 is wrong


def test_preview_dataset_with_augmentation_writes_a_changed_grid(tmp_path):
    ds = _dataset(8)
    plain, warped = tmp_path / "plain.png", tmp_path / "aug.png"
    preview.preview_dataset(ds, str(plain), n=8)
    preview.preview_dataset(ds, str(warped), n=8, augment_cfg=default_config().augment)
    a, b = np.asarray(Image.open(plain)), np.asarray(Image.open(warped))
    assert a.shape == b.shape
    assert (a != b).any()


def test_bad_labels_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="labels must lie"):
        preview.write_grid(
            np.zeros((2, 48, 48, 1), np.uint8), np.array([0, 62]), str(tmp_path / "x.png")
        )
    with pytest.raises(ValueError, match="predictions must have shape"):
        preview.write_grid(
            np.zeros((2, 48, 48, 1), np.uint8),
            np.array([0, 1]),
            str(tmp_path / "x.png"),
            predictions=np.array([0]),
        )


def test_captions_tell_I_from_l_and_show_the_confidence(tmp_path):
    font = preview.caption_font()
    assert font.getname()[0] == "DejaVu Sans Mono"
    masks = [np.asarray(font.getmask(c)) for c in "Il1"]
    assert len({m.tobytes() for m in masks}) == 3, "I, l and 1 must look different"
    images = np.zeros((2, 48, 48, 1), np.uint8)
    labels = np.array([charset.char_to_index("l")] * 2)
    predicted = np.array([charset.char_to_index("I")] * 2)
    plain, confident = tmp_path / "plain.png", tmp_path / "confident.png"
    preview.write_grid(images, labels, str(plain), predictions=predicted)
    preview.write_grid(images, labels, str(confident), predictions=predicted,
                       confidences=np.array([0.93, 0.51]))
    a = np.asarray(Image.open(plain).convert("L"), np.int32)
    b = np.asarray(Image.open(confident).convert("L"), np.int32)
    strip = slice(a.shape[0] - preview.LABEL_HEIGHT, a.shape[0])
    assert (b[strip] > 100).sum() > (a[strip] > 100).sum()  # more ink: the "93%" is drawn
