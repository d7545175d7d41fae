"""Does the drawing's size (or the pen) decide the answer? One run, drawn characters.

    python benchmarks/size_invariance.py --workdir runs/demo [--json out.json]

Each of `charjax.datasets.drawn.CHARACTERS` is drawn as pen strokes on a 280-pixel canvas at
a third, half and nine tenths of it, with two pen widths, and recognised through
`charjax.Recognizer` (so through the run's framing). Prints, per character, the six top-1
answers, then the share of characters whose top-1 is the same for all sizes (per pen, and for
all six drawings) and the share answered correctly.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import charjax
    from charjax.datasets import drawn

    rec = charjax.Recognizer.load(args.workdir)
    rows, same_all, same_per_pen, correct, total = [], 0, 0, 0, 0
    for char in drawn.CHARACTERS:
        answers = {}
        for pen in drawn.PENS:
            images = [drawn.render(char, 280, size, pen) for size in drawn.SIZES]
            answers[pen] = [top[0][0] for top in rec.predict(images, top_k=1)]
        flat = [a for pen in drawn.PENS for a in answers[pen]]
        same_all += len(set(flat)) == 1
        same_per_pen += sum(len(set(answers[pen])) == 1 for pen in drawn.PENS)
        correct += sum(a == char for a in flat)
        total += len(flat)
        rows.append({"char": char, "answers": answers})
        print(f"{char}: " + "  ".join(f"pen {pen:g}: {' '.join(answers[pen])}"
                                      for pen in drawn.PENS))
    n = len(drawn.CHARACTERS)
    summary = {
        "workdir": args.workdir, "framing": rec.framing, "characters": n,
        "same_top1_all_sizes_and_pens": same_all / n,
        "same_top1_all_sizes_per_pen": same_per_pen / (n * len(drawn.PENS)),
        "correct": correct / total,
        "changed": [r["char"] for r in rows
                    if len({a for v in r["answers"].values() for a in v}) > 1],
    }
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
