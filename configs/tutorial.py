# charjax train --config configs/tutorial.py --workdir runs/tutorial
"""The tutorial's own run on our embedded data: 44,788 train / 700 validation / 11,198 test
images, the tutorial model, Adam 1e-3 (constant, as it had), batch 128, 30 epochs; the best
weights by validation accuracy are scored on the test split.

The split is stratified per class with exactly those totals (data.val_count and
data.test_count; each class gets its share, the rounding spread by largest remainder).
About 25 minutes on a 2-core CPU.
"""

import ml_collections

from charjax_configs import default

TRAIN, VALIDATION, TEST = 44_788, 700, 11_198


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.num_epochs = 30
    config.optimizer.schedule = "constant"
    config.data.synthetic.num_images = TRAIN + VALIDATION + TEST
    config.data.val_count = VALIDATION
    config.data.test_count = TEST
    # The tutorial rendered glyphs as typeset, each in a fixed box, and trained without
    # distortions: line framing, augmentation off.
    config.data.framing = "line"
    config.augment.enabled = False
    config.model.tutorial.hidden = 128  # the tutorial's dense layer (846,654 parameters)
    return config
