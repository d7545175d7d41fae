"""How much of a model's (or an ensemble's) error is look-alike characters.

EMNIST ByClass keeps apart characters that writers draw alike: the 15 letters whose upper and
lower case EMNIST Balanced merges (c i j k l m o p s u v w x y z), and the digits 0 and 1
beside O/o and l/I (`charjax/lookalikes.py` defines the groups). This scores the test split
of each run given, then their mean-probability ensemble, and splits the mistakes into "within
a look-alike group" and "other". Ensembling and augmentation can only shrink the second kind
much.

    python benchmarks/error_groups.py runs/emnist_ensemble/member-{0,1,2,3,4} [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from charjax import evaluate, inference
from charjax.lookalikes import split_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    probabilities, labels, rows = [], None, {}
    for workdir in args.workdirs:
        predictor = inference.load(workdir)
        config = predictor.config
        test = evaluate.load_eval_data(config.data.source, config, "test")
        if labels is not None and not np.array_equal(labels, test.labels):
            raise SystemExit(f"{workdir} has another test split than {args.workdirs[0]}")
        labels = np.asarray(test.labels)
        probabilities.append(predictor.probabilities(test.images, evaluate.PREDICT_BATCH))
        rows[workdir] = split_errors(probabilities[-1].argmax(-1), labels)
    if len(probabilities) > 1:
        rows["ensemble (mean probability)"] = split_errors(
            inference.combine(probabilities).argmax(-1), labels)
    print(f"{'run':<40} {'accuracy':>8} {'errors':>6} {'look-alike':>10} {'other':>6}")
    for name, r in rows.items():
        print(f"{name:<40} {r['accuracy']:8.4f} {r['errors']:6d} {r['lookalike']:10d} "
              f"{r['other']:6d}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": int(len(labels)), "runs": rows}, f, indent=2)


if __name__ == "__main__":
    main()
