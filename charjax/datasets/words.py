"""Synthetic words and lines: separately written characters side by side on one baseline.

Each character is drawn by the synthetic generator (charjax/datasets/synthetic.py) in its
line framing, so its size and height on the line are those of handwriting (cap height,
x-height, descenders); every character of a line shares one pen and one slant, as one hand
writes them. The characters are then set left to right with random gaps between their ink
boxes (wider between words). A line is returned with each character's label and true box,
for testing and calibrating `charjax.reading`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from charjax import charset
from charjax import framing as framing_geometry
from charjax.datasets import synthetic

# A small built-in word list: common words, names and a few number-like strings; lines mix
# them with random strings (letters of one case, mixed case, digits).
WORDS: tuple[str, ...] = (
    "the", "and", "you", "that", "was", "for", "are", "with", "his", "they", "one", "have",
    "this", "from", "word", "but", "what", "some", "can", "out", "other", "were", "all",
    "there", "when", "use", "your", "how", "said", "each", "which", "she", "their", "time",
    "will", "way", "about", "many", "then", "them", "write", "would", "like", "so", "these",
    "her", "long", "make", "thing", "see", "him", "two", "has", "look", "more", "day",
    "could", "come", "did", "number", "sound", "no", "most", "people", "my", "over", "know",
    "water", "than", "call", "first", "who", "may", "down", "side", "been", "now", "find",
    "cows", "zoo", "sox", "wok", "pick", "jump", "quiz", "vex", "box", "lazy", "yes", "jig",
    "London", "Paris", "Oslo", "Kyoto", "Zurich", "Victor", "Sam", "Wendy", "Oscar", "Xavier",
    "OK", "USA", "SOS", "WOW", "ZOO", "VIP", "NASA", "UK", "PC", "CPU",
    "2024", "101", "1970", "0800", "365", "42", "7", "10", "1000", "512",
)
INK_THRESHOLD = 0.35  # of full white: what counts as ink for a character's true box


@dataclasses.dataclass(frozen=True)
class Line:
    """A rendered line: uint8 [H, W] image (white ink on black), its text, and per character
    (spaces excluded) the class index and true ink box (x0, y0, x1, y1), end-exclusive."""

    image: np.ndarray
    text: str
    labels: np.ndarray
    boxes: np.ndarray
    baseline: float  # row of the baseline in the image
    cap_height: float  # pixels


def random_text(rng: np.random.Generator, max_words: int = 3) -> str:
    """One to `max_words` words: from WORDS, or random strings of lower, upper, mixed case or
    digits, so that every class and every case appears."""
    words = []
    for _ in range(int(rng.integers(1, max_words + 1))):
        kind = rng.uniform()
        if kind < 0.45:
            word = str(rng.choice(WORDS))
        else:
            pool = (
                "abcdefghijklmnopqrstuvwxyz" if kind < 0.65
                else "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if kind < 0.8
                else "0123456789" if kind < 0.92 else charset.CLASSES
            )
            word = "".join(rng.choice(list(pool), size=int(rng.integers(2, 7))))
        words.append(word)
    return " ".join(words)


def render_line(
    text: str,
    seed: int,
    gap: tuple[float, float] = (1.0, 5.0),
    space: tuple[float, float] = (12.0, 18.0),
    margin: int = 6,
    style: dict[str, float] | None = None,
) -> Line:
    """The text (classes and spaces) written in one hand; the same seed gives the same pixels.

    `gap`: pixels between neighbouring characters' ink boxes (uniform in the range); `space`:
    between words. Pixels are those of the line framing: capitals about 22 pixels tall.
    `style` overrides the hand (see synthetic.writer_style); by default the seed draws it.
    """
    chars = [c for c in text if c != " "]
    if not chars:
        raise ValueError("text has no characters to write")
    labels = np.array([charset.char_to_index(c) for c in chars], np.int32)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    hand = style if style is not None else synthetic.writer_style(int(rng.integers(2**31)), "line")
    shared = {k: hand[k] for k in ("shear", "pen", "thicken", "pressure", "wobble") if k in hand}
    glyphs = synthetic.render_styled(labels, rng, "line", shared, table_framing="fit")
    size = framing_geometry.SIZE
    pieces, x = [], float(margin)
    boxes = np.zeros((len(chars), 4), np.int32)
    index = 0
    for position, char in enumerate(text):
        if char == " ":
            x += rng.uniform(*space)
            continue
        glyph = glyphs[index]
        cols = np.flatnonzero((glyph >= INK_THRESHOLD * 255).any(axis=0))
        if cols.size == 0:  # nothing visible: keep a thin box so every character is listed
            cols = np.array([size // 2])
        if position > 0 and text[position - 1] != " ":
            x += rng.uniform(*gap)
        left = int(round(x)) - int(cols[0])
        pieces.append((left, glyph))
        rows = np.flatnonzero((glyph >= INK_THRESHOLD * 255).any(axis=1))
        rows = rows if rows.size else np.array([size // 2])
        boxes[index] = (left + cols[0], rows[0], left + cols[-1] + 1, rows[-1] + 1)
        x = float(left + cols[-1] + 1)
        index += 1
    width = int(np.ceil(x)) + margin
    image = np.zeros((size, width), np.uint8)
    for left, glyph in pieces:
        lo, hi = max(left, 0), min(left + size, width)
        region = image[:, lo:hi]
        np.maximum(region, glyph[:, lo - left : hi - left], out=region)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    return Line(
        image=image,
        text=text,
        labels=labels,
        boxes=boxes,
        baseline=framing_geometry.LINE_BASE,
        cap_height=framing_geometry.LINE_CAP,
    )


def lines(count: int, seed: int, max_words: int = 3) -> list[Line]:
    """`count` random lines (random_text), each drawn with its own hand; deterministic."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8,)))
    return [
        render_line(random_text(rng, max_words), int(rng.integers(2**31)))
        for _ in range(count)
    ]
