# charjax train --config configs/emnist_vgg_finetune.py --workdir runs/emnist_vgg_finetune
"""configs/emnist_vgg.py started from configs/synthetic_vgg.py's synthetic-only run.

Same data, split (EMNIST 30k, val 0.1, test 0.2, split_seed 0), model, optimizer, epochs and
augmentation as configs/emnist_vgg.py; only the starting weights differ (`init_from`, a
fresh optimizer). Only EMNIST's training split is seen; the epoch kept is chosen on its
validation split. Measured (benchmarks/RESULTS.md): test 0.8541 / 0.8577 (seeds 0 / 1)
against 0.8522 / 0.8532 from scratch, +0.32 points on the mean; the best single model on
the split.

    charjax train --config configs/synthetic_vgg.py --workdir runs/synthetic_vgg
    charjax train --config configs/emnist_vgg_finetune.py --workdir runs/emnist_vgg_finetune
"""

import ml_collections

from charjax_configs import emnist_vgg


def get_config() -> ml_collections.ConfigDict:
    config = emnist_vgg.get_config()
    # A workdir, relative to where charjax runs: the run whose best weights start this one.
    config.init_from = "runs/synthetic_vgg"
    return config
