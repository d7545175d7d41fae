"""Does the embedded synthetic set teach real handwriting? Train on it, score on EMNIST.

Runs the README's first command (or another synthetic-only recipe) into a workdir, scores the
best checkpoint on every image of the shared EMNIST 30k file with `charjax eval`, and writes
the figures to benchmarks/RESULTS.md (between the transfer markers): accuracy, accuracy up
to look-alikes (0/O/o, 1/l/I/i and the upper/lower pairs EMNIST Balanced merges), per-class
accuracy, the most-confused pairs, the generator's speed and the run's wall time. It also
draws benchmarks/figures/transfer_samples.png: synthetic samples beside real ones of the
same classes. EMNIST is only scored here; nothing from it reaches the training.

    python benchmarks/transfer.py                           # the default run (~5-10 min)
    python benchmarks/transfer.py --name long --config configs/synthetic_long.py
    python benchmarks/transfer.py --no-train --workdir runs/demo   # score an existing run
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_md import when_and_where, write_section  # noqa: E402

from charjax import charset, evaluate, inference, preview  # noqa: E402
from charjax.datasets import npz, synthetic  # noqa: E402
from charjax.lookalikes import group_of  # noqa: E402

EMNIST = ROOT.parent / "shared" / "data" / "emnist-byclass" / "emnist_byclass_30k.npz"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FIGURE = ROOT / "benchmarks" / "figures" / "transfer_samples.png"
BEGIN, END = "<!-- transfer:begin -->", "<!-- transfer:end -->"
# Classes shown in the picture: the digits and the letters most often read for them.
SHOWN = "0123456789OoIl1qgbSZ"


def generation_speed(num_images: int = 62 * 100, framing: str = "fit") -> float:
    """Images per second of synthetic.generate, glyph bank already built."""
    synthetic.generate(62, seed=1, framing=framing)
    start = time.perf_counter()
    synthetic.generate(num_images, seed=2, framing=framing)
    return num_images / (time.perf_counter() - start)


def train(config: str, workdir: pathlib.Path, overrides: list[str]) -> float:
    """Runs `charjax train`; returns its wall time in seconds."""
    command = ["charjax", "train", "--config", config, "--workdir", str(workdir), *overrides]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - start


def score(workdir: pathlib.Path, emnist: pathlib.Path) -> dict:
    """What `charjax eval --workdir W --dataset npz:EMNIST` computes (the same functions),
    plus the accuracy up to look-alike groups."""
    predictor = inference.load(str(workdir))
    run_config = predictor.config
    data = evaluate.load_eval_data(f"npz:{emnist}", run_config, "all")
    probabilities = predictor.probabilities(data.images, evaluate.PREDICT_BATCH)
    result = evaluate.metrics_from_probabilities(probabilities, data.labels)
    result["most_confused"] = evaluate.most_confused_pairs(probabilities, data.labels)
    groups = np.array([group_of(c) for c in charset.CLASSES])
    predicted = probabilities.argmax(-1)
    result["lookalike_accuracy"] = float(np.mean(groups[predicted] == groups[data.labels]))
    digit = data.labels < 10
    result["digit_share"] = float(digit.mean())
    result["digit_accuracy"] = float(np.mean(predicted[digit] == data.labels[digit]))
    result["letter_accuracy"] = float(np.mean(predicted[~digit] == data.labels[~digit]))
    return result


def sample_figure(emnist: pathlib.Path, path: pathlib.Path, per_class: int = 8) -> None:
    """Rows of SHOWN classes: `per_class` fit-framed synthetic samples, then real ones."""
    fake = synthetic.generate(62 * 4 * per_class, seed=123, framing="fit")
    with np.load(emnist) as data:
        real_images = npz.resize_images(data["images"])
        real_labels = data["labels"].astype(np.int32)
    rng = np.random.default_rng(0)
    images, labels = [], []
    for char in SHOWN:
        label = charset.char_to_index(char)
        fake_pick = np.flatnonzero(fake.labels == label)[:per_class]
        real_pick = rng.choice(np.flatnonzero(real_labels == label), per_class, replace=False)
        images += [fake.images[fake_pick], real_images[real_pick]]
        labels += [fake.labels[fake_pick], real_labels[real_pick]]
    path.parent.mkdir(parents=True, exist_ok=True)
    preview.write_grid(
        np.concatenate(images), np.concatenate(labels), str(path), columns=2 * per_class
    )


def markdown(rows: list[dict], speed: float) -> str:
    """The RESULTS.md section for these runs."""
    lines = [
        BEGIN,
        "## Synthetic data -> real handwriting (`benchmarks/transfer.py`)",
        "",
        f"{when_and_where()}. "
        "Each run trains on the "
        "embedded synthetic set only and is scored on all 30,000 images of "
        "`shared/data/emnist-byclass/emnist_byclass_30k.npz` with `charjax eval`. "
        "*Look-alike accuracy* also counts a prediction in the true class's look-alike group "
        "(0/O/o, 1/l/I/i and the upper/lower pairs that EMNIST Balanced merges) as right: the "
        "part of the error that no image can settle once framing has removed size and "
        "position, and that a balanced training set splits evenly.",
        "",
        f"Generator speed (fit framing, one process): **{speed:,.0f} images/s**.",
        "",
        "| run | command | own synthetic test | EMNIST-30k | look-alike acc. | top-5 | wall |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        result = row["result"]
        look = result.get("lookalike_accuracy")
        lines.append(
            f"| {row['name']} | `{row['command']}` | {row['own_test']} | "
            f"**{result['accuracy']:.4f}** | {'' if look is None else f'{look:.4f}'} | "
            f"{result['top5_accuracy']:.4f} | {row['wall']} |"
        )
    for row in rows:
        result = row["result"]
        per_class = result["per_class"]
        lines += [
            "",
            f"Per-class EMNIST accuracy of `{row['name']}` (digits are "
            f"{result['digit_share']:.0%} of the images; digits {result['digit_accuracy']:.3f}, "
            f"letters {result['letter_accuracy']:.3f}):",
            "",
        ]
        for first, last in (("0", "9"), ("A", "Z"), ("a", "z")):
            chars = [c for c in per_class if first <= c <= last]
            lines.append("- " + ", ".join(f"`{c}` {per_class[c]:.2f}" for c in chars))
        lines += [
            "",
            "Most confused (true -> predicted, count of 30,000): "
            + ", ".join(f"`{t}->{p}` {n}" for t, p, n in result["most_confused"]),
        ]
    lines += [
        "",
        "Synthetic (left eight) and real EMNIST (right eight) samples of the classes most "
        "often confused:",
        "",
        f"![synthetic beside real](figures/{FIGURE.name})",
        END,
    ]
    return "\n".join(lines)


def _own_test(workdir: pathlib.Path) -> str:
    metrics = workdir / "metrics.json"
    if not metrics.exists():
        return ""
    value = json.loads(metrics.read_text()).get("test_accuracy")
    return "" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--name", default="default")
    parser.add_argument("--workdir", default=None, help="default: runs/transfer-NAME")
    parser.add_argument("--no-train", action="store_true", help="score an existing run")
    parser.add_argument("--emnist", default=str(EMNIST))
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md")
    parser.add_argument("--wall", default="", help="with --no-train: the run's measured time")
    parser.add_argument("overrides", nargs="*", help="--config.FIELD=VALUE flags for train")
    args = parser.parse_args()
    emnist = pathlib.Path(args.emnist)
    if not emnist.exists():
        sys.exit(f"no EMNIST file at {emnist}")
    workdir = pathlib.Path(args.workdir or ROOT / "runs" / f"transfer-{args.name}")
    wall = args.wall if args.no_train else f"{train(args.config, workdir, args.overrides):.0f} s"
    result = score(workdir, emnist)
    command = " ".join(["charjax train --config", args.config, *args.overrides])
    rows = [
        dict(name=args.name, command=command, own_test=_own_test(workdir), wall=wall, result=result)
    ]
    speed = generation_speed()
    sample_figure(emnist, FIGURE)
    text = markdown(rows, speed)
    print(text)
    if not args.no_write:
        write_section(text, BEGIN, END, RESULTS)


if __name__ == "__main__":
    main()
