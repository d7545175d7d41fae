# charjax train --config configs/emnist_finetune.py --workdir runs/emnist_finetune
"""configs/emnist.py started from a synthetic-only run: pretrain on the embedded set, then
fine-tune on real handwriting.

Pretraining is the README's first command (configs/default.py: the tutorial model on
fit-framed synthetic characters, no real image), which writes runs/demo; this config then
starts from that run's best weights with a fresh optimizer (`init_from`) and trains exactly
as configs/emnist.py does: same data, split (EMNIST 30k, val 0.1, test 0.2, split_seed 0),
model, optimizer, 30 epochs and augmentation. Only the training split of EMNIST is seen;
the epoch kept is chosen on its validation split.

    charjax train --config configs/default.py --workdir runs/demo
    charjax train --config configs/emnist_finetune.py --workdir runs/emnist_finetune
    # or from another synthetic run: --config.init_from=runs/other

The pretraining run must use the same model settings (config.model); its framing should be
`fit`, as EMNIST's is. Measured (benchmarks/RESULTS.md): from the default run of generator
version 5 (dense 256), ahead of configs/emnist.py by ~1.5 points of validation accuracy over
the first ten epochs, level at the end: test 0.8406 / 0.8407 (seeds 0 / 1) against 0.8377 /
0.8452 from scratch. At dense 128 from the version-3 run likewise: 0.8366 / 0.8379 against
0.8396 / 0.8371. A gentler start (Adam 5e-4 with one warm-up epoch) was no better on
validation through 16 epochs of both seeds.
"""

import ml_collections

from charjax_configs import emnist


def get_config() -> ml_collections.ConfigDict:
    config = emnist.get_config()
    # A workdir, relative to where charjax runs: the run whose best weights start this one.
    config.init_from = "runs/demo"
    return config
