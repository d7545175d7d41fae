"""Image preparation: one framing shared with the synthetic generator, size- and pen-invariant."""


import numpy as np
import pytest
from conftest import data_config, tiny_config
from PIL import Image

from charjax import charset, checkpoints, framing, validation
from charjax.datasets import drawn, synthetic
from charjax.errors import ConfigError

# Per character, the mean absolute difference (0-1 scale) between each of its six prepared
# drawings (three sizes x two pens) and their mean. Measured about 0.012 at worst; a plain
# resize of the same drawings deviates 0.03-0.10.
INVARIANCE_BOUND = 0.02


def _deviation(images: np.ndarray) -> float:
    images = images.astype(np.float64) / 255.0
    return float(np.abs(images - images.mean(0)).mean())


def test_size_and_pen_do_not_change_the_prepared_input():
    assert len(drawn.CHARACTERS) >= 20
    worst, plain = {}, []
    for char in drawn.CHARACTERS:
        variants = [drawn.render(char, 280, s, p) for s in drawn.SIZES for p in drawn.PENS]
        worst[char] = _deviation(np.stack([framing.prepare(v, "fit").pixels for v in variants]))
        plain.append(_deviation(np.stack([framing.prepare(v, "line", 1).pixels  # resized
                                          for v in variants])))
    assert max(worst.values()) <= INVARIANCE_BOUND, worst
    assert np.median(plain) > 2 * INVARIANCE_BOUND  # the bound tells framing from resizing


def _ink_box(image: np.ndarray) -> tuple[int, int, float, float]:
    mask = image[..., 0] > 127
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1,
            (rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2)


@pytest.mark.parametrize("kind", framing.FRAMINGS)
def test_prepared_strokes_are_as_wide_as_the_training_set(kind):
    """STROKE_WIDTH must follow the generator: re-measure it when the generator changes."""
    train = synthetic.generate(2 * charset.NUM_CLASSES, seed=4, framing=kind).images
    prepared = [framing.prepare(drawn.render(c, 280, 0.5, 10.0), kind).pixels
                for c in drawn.CHARACTERS]
    want = np.median([framing.stroke_width(x[..., 0] > 127) for x in train])
    got = np.median([framing.stroke_width(x[..., 0] > 127) for x in prepared])
    assert abs(got - want) <= 0.2 * want, (got, want)


def test_fit_fills_and_centres_the_box_as_the_generator_does():
    assert synthetic._FIT_BOX == framing.FIT_BOX and synthetic._LINE_BASE == framing.LINE_BASE
    train = synthetic.generate(2 * charset.NUM_CLASSES, seed=4, framing="fit").images
    boxes = np.array([_ink_box(framing.prepare(drawn.render(c, 300, 0.3, 5.0)).pixels)
                      for c in drawn.CHARACTERS])
    want = np.median([max(_ink_box(x)[:2]) for x in train])
    assert abs(np.median(boxes[:, :2].max(1)) - want) <= 2
    centre = (charset.IMAGE_SIZE - 1) / 2
    assert np.abs(boxes[:, 2:] - centre).max() <= 1.0


def test_line_framing_keeps_size():
    small = framing.prepare(drawn.render("o", 280, 1 / 3, 8.0), "line").pixels
    large = framing.prepare(drawn.render("o", 280, 9 / 10, 8.0), "line").pixels
    assert max(_ink_box(large)[:2]) > 2 * max(_ink_box(small)[:2])
    assert framing.line_guides()["baseline"] == framing.LINE_BASE


def test_colour_alpha_and_polarity_give_the_same_input():
    ink = 255 - drawn.render("R", 200, 0.6, 9.0)  # white ink on black
    reference = framing.prepare(ink).pixels
    black_on_white = 255 - ink
    white_on_transparent = np.dstack([np.full_like(ink, 255)] * 3 + [ink])
    black_on_transparent = np.dstack([np.zeros_like(ink)] * 3 + [ink])
    a = ink[..., None] / 255.0
    blue_on_grey = (np.array([200, 200, 190]) * (1 - a) + np.array([30, 40, 120]) * a)
    blue_on_grey = blue_on_grey.astype(np.uint8)
    for image in (black_on_white, white_on_transparent, black_on_transparent,
                  Image.fromarray(white_on_transparent, "RGBA"), ink.astype(np.float32) / 255):
        out = framing.prepare(image)
        assert out.warning is None
        assert np.abs(out.pixels.astype(int) - reference).mean() < 3, type(image)
    assert np.abs(framing.prepare(blue_on_grey).pixels.astype(int) - reference).mean() < 3


def test_blank_and_near_blank_images_are_flagged():
    for blank in (np.zeros((64, 64), np.uint8), np.full((30, 50, 3), 255, np.uint8),
                  np.dstack([np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20), np.uint8)])):
        out = framing.prepare(blank)
        assert out.warning and "blank" in out.warning
        assert out.pixels.shape == (48, 48, 1) and out.pixels.max() == 0
    faint = np.full((100, 100), 128, np.uint8)
    faint[40:60, 40:60] = 133
    assert "blank" in framing.prepare(faint).warning
    speck = np.zeros((2000, 2000), np.uint8)
    speck[1000:1003, 1000:1003] = 255
    assert "near-blank" in framing.prepare(speck, "line").warning
    assert framing.prepare(drawn.render("A")).warning is None


def test_bad_arrays_are_refused_by_name():
    with pytest.raises(ValueError, match="shape"):
        framing.prepare(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        framing.prepare(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="framing"):
        framing.prepare(np.zeros((4, 4)), "centred")


def test_framing_is_read_from_a_run_config():
    # older runs kept it in data.synthetic; their stored config is upgraded on restore
    stored = {"data": {"synthetic": {"num_images": 124, "seed": 0, "framing": "fit"}}}
    assert checkpoints.upgrade_config(stored).data.framing == "fit"
    assert checkpoints.upgrade_config({"data": {"framing": "fit"}}).data.framing == "fit"
    assert checkpoints.upgrade_config({"data": {}}).data.framing == "line"


def test_a_run_stored_without_a_preparation_keeps_the_one_it_was_trained_with():
    assert checkpoints.upgrade_config({"data": {"framing": "fit"}}).data.preparation == 1
    stored = {"data": {"preparation": framing.PREPARATION}}
    assert checkpoints.upgrade_config(stored).data.preparation == framing.PREPARATION == 2
    with pytest.raises(ValueError, match="preparation"):
        framing.prepare(np.zeros((4, 4)), "fit", 3)
    with pytest.raises(ConfigError, match=r"data.preparation=3: .* in 1..2"):
        validation.check_config(tiny_config(**{"data.preparation": 3}))


def test_folder_images_are_framed_per_the_config(tmp_path):
    from charjax import datasets

    small = drawn.render("H", 300, 0.25, 6.0)  # a small H in a large white image
    for i in range(2):
        Image.fromarray(small).save(tmp_path / f"H_{i}.png")
    cache = tmp_path / "cache"
    for preparation in (1, 2):
        first = {kind: datasets.load(f"folder:{tmp_path}", data_config(
            framing=kind, preparation=preparation, cache_dir=str(cache))).images[0]
            for kind in framing.FRAMINGS}
        assert max(_ink_box(first["line"])[:2]) < 20  # whole image: the H stays small
        assert abs(max(_ink_box(first["fit"])[:2]) - framing.FIT_BOX) <= 2  # cropped to ink
        for kind, image in first.items():
            want = framing.prepare(Image.open(tmp_path / "H_0.png"), kind, preparation).pixels
            np.testing.assert_array_equal(image, want)
    # preparation 1 kept a fit image's own pen; 2 redraws it as `predict` does
    assert not np.array_equal(first["fit"], framing.prepare(small, "fit", 1).pixels)
