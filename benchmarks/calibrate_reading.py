"""Fits the line-geometry constants of charjax/reading.py on charjax's own synthetic glyphs.

    python benchmarks/calibrate_reading.py            # prints the table to paste into reading.py

Every class is drawn N times in the line framing (the hand-printed, Hershey and outline forms
the fit-framed model learns, placed on the line as in a word), and for each the ink box's top
and bottom are measured in cap heights from the baseline: top = (baseline - top row) / cap,
bottom = (bottom row - baseline) / cap. The trimmed means are a class's place on
the line, and the trimmed standard deviations its scatter. Nothing here is fitted to
real handwriting.
"""

from __future__ import annotations

import argparse

import numpy as np

from charjax import charset
from charjax import framing as geometry
from charjax.datasets import synthetic, words


def measure(per_class: int, seed: int) -> dict[str, tuple[float, float, float, float]]:
    """Per class: (median top, median bottom, spread of top, spread of bottom), cap units."""
    labels = np.repeat(np.arange(charset.NUM_CLASSES), per_class)
    rng = np.random.default_rng(seed)
    images = synthetic.render_styled(labels, rng, "line", table_framing="fit")
    ink = images >= words.INK_THRESHOLD * 255
    rows = np.arange(images.shape[1])
    present = ink.any(axis=2)
    top = np.where(present, rows, 10**6).min(axis=1)
    bottom = np.where(present, rows, -1).max(axis=1) + 1
    rel_top = (geometry.LINE_BASE - top) / geometry.LINE_CAP
    rel_bottom = (bottom - geometry.LINE_BASE) / geometry.LINE_CAP
    table = {}
    for label, char in enumerate(charset.CLASSES):
        t, b = rel_top[labels == label], rel_bottom[labels == label]
        table[char] = (*(_trimmed(v)[0] for v in (t, b)), *(_trimmed(v)[1] for v in (t, b)))
    return table


def _trimmed(values: np.ndarray, cut: float = 0.1) -> tuple[float, float]:
    """Mean and standard deviation of the values less the `cut` share at either end (rows
    are whole pixels, so a median would be too coarse)."""
    low, high = np.quantile(values, [cut, 1 - cut])
    kept = values[(values >= low) & (values <= high)]
    return float(kept.mean()), float(kept.std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = measure(args.per_class, args.seed)
    print("LINE_PLACE: dict[str, tuple[float, float, float, float]] = {")
    for char, values in table.items():
        print(f"    {char!r}: ({', '.join(f'{v:.3f}' for v in values)}),")
    print("}")


if __name__ == "__main__":
    main()
