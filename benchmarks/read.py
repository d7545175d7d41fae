"""Reading lines vs reading characters one by one, on synthetic lines (charjax/reading.py).

    python benchmarks/read.py --workdir runs/demo            # 1,000 lines, writes RESULTS.md
    python benchmarks/read.py --workdir runs/demo --lines 200 --no-write

Draws lines of separately written characters (charjax/datasets/words.py: words from a small
list, random lower / upper / mixed-case strings and numbers; one pen and slant per line; a
seed the run's training never used) and measures
* segmentation: a line passes when every character is found once and none is split (each
  found box within 2 pixels of the true one); failures are listed by kind;
* reading: on the lines that segment, the character accuracy of `Recognizer.read` against
  `Recognizer.predict` on each character's own crop (its true box: the isolated-character
  path), case errors (the right letter in the wrong case), and accuracy on digits,
  lowercase and uppercase.
Writes its section into benchmarks/RESULTS.md and an example figure under benchmarks/figures/.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FIGURE = ROOT / "benchmarks" / "figures" / "read_lines.png"
BEGIN, END = "<!-- read:begin -->", "<!-- read:end -->"
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_md import when_and_where, write_section  # noqa: E402

from charjax import charset, framing, reading  # noqa: E402
from charjax.datasets import words  # noqa: E402
from charjax.recognizer import Recognizer  # noqa: E402

LINE_SEED = 2026  # lines drawn for this benchmark only


def segmentation_kind(found: np.ndarray, true: np.ndarray) -> str | None:
    """None when every character is found once and none is split, else the failure's kind."""
    if len(found) < len(true):
        return "merged (fewer boxes than characters)"
    if len(found) > len(true):
        return "split (more boxes than characters)"
    if not np.all(np.abs(found - true) <= 2):
        return "misplaced (a box off by more than 2 pixels)"
    return None


def run(workdir: str, count: int) -> dict:
    rec = Recognizer.load(workdir)
    start = time.perf_counter()
    lines = words.lines(count, LINE_SEED)
    draw_s = time.perf_counter() - start
    failures: dict[str, list[str]] = {}
    truth, read_answers, predict_answers, examples = [], [], [], []
    read_s = 0.0
    for line in lines:
        ink, _ = framing.ink_image(line.image)
        found = np.array([s.box for s in reading.segment(ink)]).reshape(-1, 4)
        kind = segmentation_kind(found, line.boxes)
        if kind:
            failures.setdefault(kind, []).append(line.text)
            continue
        tick = time.perf_counter()
        result = rec.read(line.image)
        read_s += time.perf_counter() - tick
        crops = [line.image[y0:y1, x0:x1] for x0, y0, x1, y1 in line.boxes]
        alone = [top[0][0] for top in rec.predict(crops, top_k=1)]
        got = [c.char for c in result.chars]
        truth.extend(charset.CLASSES[i] for i in line.labels)
        read_answers.extend(got)
        predict_answers.extend(alone)
        if len(examples) < 8:
            examples.append((line, result, alone))
    segmented = count - sum(len(v) for v in failures.values())
    return dict(
        count=count, segmented=segmented, failures=failures, truth=truth,
        read=read_answers, predict=predict_answers, examples=examples,
        draw_s=draw_s, read_ms=1000 * read_s / max(segmented, 1),
        test_accuracy=rec.metrics.get("test_accuracy", float("nan")), framing=rec.framing,
    )


def scores(truth: list[str], answers: list[str]) -> dict[str, float]:
    t, a = np.array(truth), np.array(answers)
    case = np.array([x != y and x.lower() == y.lower() for x, y in zip(t, a, strict=True)])
    groups = {
        "digits": np.char.isdigit(t),
        "lowercase": np.char.islower(t),
        "uppercase": np.char.isupper(t),
    }
    out = {"accuracy": float((t == a).mean()), "case_errors": int(case.sum())}
    out["folded"] = float(np.mean([x.lower() == y.lower() for x, y in zip(t, a, strict=True)]))
    for name, where in groups.items():
        out[name] = float((t[where] == a[where]).mean()) if where.any() else float("nan")
    return out


def figure(examples: list, path: pathlib.Path) -> None:
    """The example lines, 3x, each character's box green (right) or red (wrong), the answer
    above it and the isolated prediction below when it differs."""
    scale, pad = 3, 18
    width = max(line.image.shape[1] for line, _, _ in examples) * scale
    row = 48 * scale + 2 * pad
    canvas = Image.new("RGB", (width, row * len(examples)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (line, result, alone) in enumerate(examples):
        y = i * row + pad
        picture = Image.fromarray(255 - line.image).resize(
            (line.image.shape[1] * scale, 48 * scale), Image.NEAREST)
        canvas.paste(picture.convert("RGB"), (0, y))
        truth = [charset.CLASSES[k] for k in line.labels]
        for char, want, single in zip(result.chars, truth, alone, strict=True):
            x0, y0, x1, y1 = (v * scale for v in char.box)
            colour = (0, 150, 0) if char.char == want else (200, 0, 0)
            draw.rectangle((x0, y + y0, x1, y + y1), outline=colour, width=2)
            draw.text((x0, y - pad + 2), char.char, fill=colour)
            if single != char.char:
                draw.text((x0, y + 48 * scale + 2), f"alone: {single}", fill=(120, 120, 120))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def markdown(workdir: str, r: dict, s_read: dict, s_pred: dict) -> str:
    failures = r["failures"]
    listed = "; ".join(
        f"{kind}: {len(texts)} ({', '.join(repr(t) for t in texts[:4])}"
        f"{', ...' if len(texts) > 4 else ''})"
        for kind, texts in failures.items()
    ) or "none"
    n_chars = len(r["truth"])
    gain = 100 * (s_read["accuracy"] - s_pred["accuracy"])
    halved = s_read["case_errors"] <= s_pred["case_errors"] / 2
    rows = [
        ("characters right", "accuracy"),
        ("right with case folded", "folded"),
        ("digits", "digits"),
        ("lowercase", "lowercase"),
        ("uppercase", "uppercase"),
    ]
    table = ["| | `predict`, one character at a time | `read`, the line |", "|---|---|---|"]
    table += [f"| {name} | {s_pred[k]:.4f} | {s_read[k]:.4f} |" for name, k in rows]
    table.append(f"| case errors | {s_pred['case_errors']} | {s_read['case_errors']} |")
    return "\n".join([
        BEGIN,
        "## Reading words and lines (`benchmarks/read.py`)",
        "",
        f"{when_and_where()}. Run `{workdir}` (framing `{r['framing']}`, test accuracy "
        f"{r['test_accuracy']:.4f}). {r['count']:,} synthetic lines "
        "(`charjax/datasets/words.py`, seed "
        f"{LINE_SEED}: one to three words from a small list or random lower / upper / mixed "
        "strings and numbers, one pen and slant per line, 1-5 pixels between characters, "
        "12-18 between words; capitals 22 pixels tall).",
        "",
        f"Segmentation: {r['segmented']:,} of {r['count']:,} lines "
        f"({r['segmented'] / r['count']:.1%}) have every character found once and none "
        f"split (target 98 %). Failures: {listed}.",
        "",
        f"Reading, on the {n_chars:,} characters of the lines that segment (`predict` is "
        "given each character's own crop, the isolated-character path):",
        "",
        *table,
        "",
        f"`read` gains {gain:+.1f} points of character accuracy (target +10) and "
        f"{'at least halves' if halved else 'does not halve'} the case errors "
        f"({s_pred['case_errors']} -> {s_read['case_errors']}). It takes "
        f"{r['read_ms']:.0f} ms per line at this load (segmentation, framing, one batched "
        "model call, the line's estimate). The line's geometry (cap height, baseline) is "
        "estimated from each line alone, weighted by the model's certainty of each "
        "character's place on the line; the class places (`reading.LINE_PLACE`) were "
        "measured on line-framed synthetic glyphs by `benchmarks/calibrate_reading.py`, not "
        "tuned on any real set, nor on these lines.",
        "",
        "![lines read](figures/read_lines.png)",
        "",
        "*Green: right, red: wrong; `alone:` is the isolated prediction where it differs.*",
        END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    r = run(args.workdir, args.lines)
    s_read, s_pred = scores(r["truth"], r["read"]), scores(r["truth"], r["predict"])
    text = markdown(args.workdir, r, s_read, s_pred)
    print(text)
    if not args.no_write:
        figure(r["examples"], FIGURE)
        write_section(text, BEGIN, END, RESULTS)


if __name__ == "__main__":
    main()
