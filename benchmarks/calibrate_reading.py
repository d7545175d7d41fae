"""Fits the line-geometry constants of charjax/reading.py on charjax's own synthetic glyphs.

    python benchmarks/calibrate_reading.py            # prints the table to paste into reading.py
    python benchmarks/calibrate_reading.py --run runs/demo   # also: the geometry's weight

Every class is drawn N times in the line framing (the hand-printed, Hershey and outline forms
the fit-framed model learns, placed on the line as in a word), and for each the ink box's top
and bottom are measured in cap heights from the baseline: top = (baseline - top row) / cap,
bottom = (bottom row - baseline) / cap. The trimmed means are a class's place on
the line, and the trimmed standard deviations its scatter. Nothing here is fitted to
real handwriting.

With --run, the weight of the geometric likelihood against the model's probabilities
(reading.GEOMETRY_WEIGHT) and the cap on its squared z-scores (reading.MAX_Z2) are chosen by
character accuracy on synthetic lines of a seed of their own (CALIBRATION_SEED; the
benchmark, benchmarks/read.py, draws other lines).
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


CALIBRATION_SEED = 77


def choose_weights(run: str, count: int) -> list[tuple[float, float, float]]:
    """(accuracy, weight, cap) on `count` synthetic lines for a small grid, best first."""
    from charjax import reading
    from charjax.recognizer import Recognizer

    rec = Recognizer.load(run)
    cases = []
    for line in words.lines(count, CALIBRATION_SEED):
        ink, _ = geometry.ink_image(line.image)
        segments = reading.segment(ink)
        if len(segments) != len(line.labels):
            continue
        boxes = np.array([s.box for s in segments], np.float64)
        probs = rec.probabilities(reading.crops(ink, segments, rec.framing, None))
        cases.append((np.asarray(probs, np.float64), boxes, line.labels))
    results = []
    old = reading.GEOMETRY_WEIGHT, reading.MAX_Z2
    try:
        for weight in (0.25, 0.5, 0.75, 1.0):
            for cap in (4.0, 9.0, 16.0):
                reading.GEOMETRY_WEIGHT, reading.MAX_Z2 = weight, cap
                right = total = 0
                for probs, boxes, labels in cases:
                    posterior, _, _ = reading.decide(probs, boxes, reading._words(boxes))
                    right += int((posterior.argmax(axis=1) == labels).sum())
                    total += len(labels)
                results.append((right / total, weight, cap))
    finally:
        reading.GEOMETRY_WEIGHT, reading.MAX_Z2 = old
    return sorted(results, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", help="a trained run: also choose the geometry's weight")
    parser.add_argument("--lines", type=int, default=300)
    args = parser.parse_args()
    if args.run:
        for accuracy, weight, cap in choose_weights(args.run, args.lines):
            print(f"GEOMETRY_WEIGHT={weight} MAX_Z2={cap}: character accuracy {accuracy:.4f}")
        return
    table = measure(args.per_class, args.seed)
    print("LINE_PLACE: dict[str, tuple[float, float, float, float]] = {")
    for char, values in table.items():
        print(f"    {char!r}: ({', '.join(f'{v:.3f}' for v in values)}),")
    print("}")


if __name__ == "__main__":
    main()
