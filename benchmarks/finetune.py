"""Does synthetic pretraining help on real handwriting? Pretrain, fine-tune, compare.

Trains the synthetic-only pretraining run (configs/default.py: the README's first command),
then for each seed the same EMNIST recipe twice on the split of configs/emnist.py (EMNIST
30k, val 0.1, test 0.2, split_seed 0): from a random init (configs/emnist.py) and from the
pretrained weights (configs/emnist_finetune.py, `init_from`). Each run keeps the epoch with
the best validation accuracy and scores the test split once. Fine-tuning sees only EMNIST's
training split; pretraining sees no real image. Writes the table to benchmarks/RESULTS.md
between the finetune markers.

    python benchmarks/finetune.py                  # tutorial model, seeds 0 1 (~1 h quiet)
    python benchmarks/finetune.py --model vgg      # compact_vgg (configs/synthetic_vgg.py)
    python benchmarks/finetune.py --seeds 0 --no-write
    python benchmarks/finetune.py --mix            # also mixed batches (configs/emnist_mix.py)
    python benchmarks/finetune.py --variant lr5e-4 --config.learning_rate=5e-4 \
        --config.optimizer.warmup_epochs=1.0     # also fine-tune with other settings

Finished runs in runs/finetune/ are reused (their metrics.json), so a rerun only trains what
is missing; delete a workdir to retrain it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- finetune:begin -->", "<!-- finetune:end -->"
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_md import when_and_where, write_section  # noqa: E402

# model -> (pretraining config, EMNIST-alone config, fine-tune config)
RECIPES = {
    "tutorial": ("configs/default.py", "configs/emnist.py", "configs/emnist_finetune.py"),
    "vgg": ("configs/synthetic_vgg.py", "configs/emnist_vgg.py", "configs/emnist_vgg_finetune.py"),
}
# model -> config that mixes synthetic images into EMNIST's training batches instead (--mix)
MIXED = {"tutorial": "configs/emnist_mix.py"}


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                         capture_output=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "charjax"], cwd=ROOT, text=True,
                           capture_output=True).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def train(config: str, workdir: pathlib.Path, overrides: list[str]) -> dict:
    """Runs `charjax train` unless `workdir` holds a finished run; returns its metrics.json
    with the command and the code commit it was trained at."""
    metrics = workdir / "metrics.json"
    command = ["charjax", "train", "--config", config, "--workdir", str(workdir), *overrides]
    stamp = workdir / "benchmark.json"
    if not metrics.exists():
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT)
        stamp.write_text(json.dumps({"commit": _commit(),
                                     "wall_seconds": time.perf_counter() - start}))
    result = json.loads(metrics.read_text())
    result.update(json.loads(stamp.read_text()) if stamp.exists() else {})
    result["command"] = " ".join(command).replace(str(ROOT) + os.sep, "")
    return result


def emnist_test_accuracy(workdir: pathlib.Path, emnist_config: str) -> float:
    """A run's best weights scored on the test split of `emnist_config` (for the
    synthetic-only run: how far pretraining alone gets on that split)."""
    from charjax import config_files, datasets, evaluate, inference, input_pipeline

    predictor = inference.load(str(workdir))
    data = config_files.load(str(ROOT / emnist_config)).data
    test = input_pipeline.split(datasets.load(data.source, data), data).test
    probabilities = predictor.probabilities(test.images, evaluate.PREDICT_BATCH)
    return float(np.mean(probabilities.argmax(-1) == test.labels))


def _val_at(run: dict, epoch: int) -> str:
    epochs = run["epochs"]
    return f"{epochs[epoch - 1]['val_accuracy']:.4f}" if len(epochs) >= epoch else ""


def markdown(model: str, pretrain: dict, zero_shot: float, rows: list[dict]) -> str:
    """The RESULTS.md section: one line per run, then the means per recipe."""
    lines = [
        BEGIN,
        "## Synthetic pretraining, then EMNIST (`benchmarks/finetune.py`)",
        "",
        f"{when_and_where()}. "
        "Split of `configs/emnist.py` "
        "(EMNIST ByClass 30k, stratified, val 0.1, test 0.2, split_seed 0: 20,998 / 2,999 / "
        "6,003 images). *from scratch* is the EMNIST config as it is; *fine-tuned* the same "
        "config started from the synthetic-only run's best weights (`init_from`, fresh "
        "optimizer; a named variant adds the flags its commands show); *mixed batches* "
        "trains from a random init with about as many synthetic characters as EMNIST "
        "training images joined to its training split (`data.train_mix`), validation and "
        "test unchanged. The epoch kept is the "
        "best on validation; test is scored once. Train time is the wall time of training at "
        "the load of the moment, so rows are not comparable.",
        "",
        f"Pretraining (`{pretrain['command']}`, no real image, code at "
        f"`{pretrain.get('commit', 'unknown')}`): own synthetic test "
        f"{pretrain['test_accuracy']:.4f}, best epoch {pretrain['best_epoch']}, "
        f"{pretrain['train_seconds'] / 60:.1f} min training. Its weights alone score "
        f"**{zero_shot:.4f}** on the EMNIST test split.",
        "",
        "| model | start | seed | val acc. epoch 5 | epoch 10 | best val (epoch) | test acc. "
        "| train time |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        run = row["run"]
        lines.append(
            f"| {model} | {row['start']} | {row['seed']} | {_val_at(run, 5)} | "
            f"{_val_at(run, 10)} | {run['best_val_accuracy']:.4f} ({run['best_epoch']}) | "
            f"**{run['test_accuracy']:.4f}** | {run['train_seconds'] / 60:.1f} min |"
        )
    means = {}
    for start in dict.fromkeys(r["start"] for r in rows):
        picked = [r["run"] for r in rows if r["start"] == start]
        means[start] = float(np.mean([r["test_accuracy"] for r in picked]))
        val = float(np.mean([r["best_val_accuracy"] for r in picked]))
        lines.append(f"| {model} | **{start}, mean** | {len(picked)} | | | {val:.4f} | "
                     f"**{means[start]:.4f}** | |")
    lines.append("")
    for start in list(means)[1:]:
        gain = 100 * (means[start] - means["from scratch"])
        lines.append(f"- {start} against from scratch: **{gain:+.2f} points** of test "
                     "accuracy (mean over the seeds)")
    lines += ["", "Commands:", ""]
    lines += sorted({f"- `{r['run']['command']}`" for r in rows})
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(RECIPES), default="tutorial")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "finetune"))
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md")
    parser.add_argument("--mix", action="store_true", help="also train with synthetic images "
                        "mixed into EMNIST's training batches (tutorial model)")
    parser.add_argument("--variant", default="", help="also fine-tune with the extra flags, "
                        "into runs/finetune/MODEL_finetune_VARIANT_sSEED")
    args, flags = parser.parse_known_args()
    if flags and not args.variant:
        parser.error(f"{' '.join(flags)}: extra flags need --variant NAME")
    if args.mix and args.model not in MIXED:
        parser.error(f"--mix: no mixed-batch config for --model {args.model}")
    pretrain_config, scratch_config, finetune_config = RECIPES[args.model]
    runs = pathlib.Path(args.runs)
    pretrain_dir = runs / f"pretrain_{args.model}"
    pretrain = train(pretrain_config, pretrain_dir, [])
    zero_shot = emnist_test_accuracy(pretrain_dir, scratch_config)
    rows = []
    for seed in args.seeds:
        seeded = [f"--config.seed={seed}"]
        rows.append(dict(start="from scratch", seed=seed, run=train(
            scratch_config, runs / f"{args.model}_scratch_s{seed}", seeded)))
        rows.append(dict(start="fine-tuned", seed=seed, run=train(
            finetune_config, runs / f"{args.model}_finetune_s{seed}",
            [*seeded, f"--config.init_from={pretrain_dir}"])))
        if args.mix:
            rows.append(dict(start="mixed batches", seed=seed, run=train(
                MIXED[args.model], runs / f"{args.model}_mix_s{seed}", seeded)))
        if args.variant:
            rows.append(dict(start=f"fine-tuned, {args.variant}", seed=seed, run=train(
                finetune_config, runs / f"{args.model}_finetune_{args.variant}_s{seed}",
                [*seeded, f"--config.init_from={pretrain_dir}", *flags])))
    order = list(dict.fromkeys(r["start"] for r in rows))
    rows.sort(key=lambda r: (order.index(r["start"]), r["seed"]))
    text = markdown(args.model, pretrain, zero_shot, rows)
    print(text)
    if not args.no_write:
        write_section(text, BEGIN, END, RESULTS)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
