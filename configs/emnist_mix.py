# charjax train --config configs/emnist_mix.py --workdir runs/emnist_mix
"""configs/emnist.py with synthetic characters mixed into every training batch.

The other way to use the embedded set for real handwriting (configs/emnist_finetune.py
pretrains on it instead): EMNIST's training split (20,998 images of the split of
configs/emnist.py) is joined by about as many fit-framed synthetic characters, balanced
over the classes, so a batch is about half real, half synthetic. Validation and test
stay EMNIST only, so the epoch kept and its score are the same as configs/emnist.py's.
Same model, optimizer, epochs and augmentation; an epoch is twice as long. Measured at the
tutorial's dense width of 128, seed 0 (benchmarks/RESULTS.md): test 0.8229 against 0.8396
without the synthetic images; pretraining (configs/emnist_finetune.py) does better.
"""

import ml_collections

from charjax_configs import emnist


def get_config() -> ml_collections.ConfigDict:
    config = emnist.get_config()
    config.data.train_mix = "synthetic"
    config.data.synthetic.num_images = 62 * 340  # 21,080: about EMNIST's training split
    return config
