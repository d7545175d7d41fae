"""Synthetic words and lines (charjax/datasets/words.py)."""

import numpy as np
import pytest

from charjax import charset
from charjax.datasets import synthetic, words


def test_line_is_deterministic_and_boxes_hold_each_character():
    a = words.render_line("Hi 42", seed=3)
    b = words.render_line("Hi 42", seed=3)
    assert np.array_equal(a.image, b.image)
    assert a.image.dtype == np.uint8 and a.image.shape[0] == 48
    assert [charset.CLASSES[i] for i in a.labels] == list("Hi42")
    assert len(a.boxes) == 4
    # boxes run left to right, do not overlap, and each holds ink
    assert np.all(a.boxes[1:, 0] >= a.boxes[:-1, 2])
    for x0, y0, x1, y1 in a.boxes:
        assert a.image[y0:y1, x0:x1].max() >= words.INK_THRESHOLD * 255
    # the space is wider than the gaps within a word
    gaps = a.boxes[1:, 0] - a.boxes[:-1, 2]
    assert gaps[1] > max(gaps[0], gaps[2])
    assert not np.array_equal(a.image, words.render_line("Hi 42", seed=4).image)


def test_lowercase_is_smaller_than_uppercase_on_the_line():
    line = words.render_line("oOoO", seed=0)
    heights = line.boxes[:, 3] - line.boxes[:, 1]
    assert heights[1] > 1.2 * heights[0] and heights[3] > 1.2 * heights[2]
    assert np.all(np.abs(line.boxes[:, 3] - line.baseline) <= 4)  # all stand on the baseline


def test_random_lines_cover_cases_and_digits():
    texts = "".join(line.text for line in words.lines(30, seed=1))
    assert any(c.isdigit() for c in texts)
    assert any(c.isupper() for c in texts) and any(c.islower() for c in texts)


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="no characters"):
        words.render_line("  ", seed=0)


def test_writer_style_is_fixed_by_its_seed():
    assert synthetic.writer_style(5) == synthetic.writer_style(5)
    assert synthetic.writer_style(5) != synthetic.writer_style(6)
    assert np.array_equal(synthetic.writer_glyphs(5), synthetic.writer_glyphs(5))
    labels = np.arange(charset.NUM_CLASSES)
    rng = np.random.default_rng(0)
    images = synthetic.render_styled(
        labels, rng, "fit", synthetic.writer_style(5), glyph=synthetic.writer_glyphs(5)
    )
    assert images.shape == (62, 48, 48) and images.dtype == np.uint8
    assert np.all(images.max(axis=(1, 2)) > 200)
