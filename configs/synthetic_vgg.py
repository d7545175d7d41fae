# charjax train --config configs/synthetic_vgg.py --workdir runs/synthetic_vgg
"""compact_vgg on the embedded synthetic set only: the pretraining run of
configs/emnist_vgg_finetune.py.

configs/default.py's data (fit-framed synthetic characters, 148,800 images, no real image)
and augmentation, with configs/emnist_vgg.py's model and optimizer (compact_vgg, dropout
0.5, Adam 2e-3, one warm-up epoch, cosine decay) so the weights fit that config. Four
epochs, to keep the pair's cost near two configs/emnist_vgg.py runs. Measured with the
version-4 generator (benchmarks/RESULTS.md): own synthetic test 0.9226, and 0.5950 of all
30,000 EMNIST-30k images with no real image seen.
"""

import ml_collections

from charjax_configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.num_epochs = 4
    config.model.name = "compact_vgg"
    config.model.compact_vgg.dropout = 0.5
    config.learning_rate = 2e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_epochs = 1.0
    config.report.projector_max = 0
    return config
