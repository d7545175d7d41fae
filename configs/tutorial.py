# charjax train --config configs/tutorial.py --workdir runs/tutorial
"""The tutorial's own run on our embedded data: 44,788 train / 700 validation / 11,198 test
images, the tutorial model, Adam 1e-3 (constant, as it had), batch 128, 30 epochs; the best
weights by validation accuracy are scored on the test split.

The split is stratified per class, so its sizes can differ from those by a few images of
rounding (the run logs the exact counts). About 25 minutes on a 2-core CPU.
"""

import ml_collections

from charjax import config_files

TRAIN, VALIDATION, TEST = 44_788, 700, 11_198


def get_config() -> ml_collections.ConfigDict:
    config = config_files.sibling(__file__, "default.py")
    total = TRAIN + VALIDATION + TEST
    config.num_epochs = 30
    config.optimizer.schedule = "constant"
    config.data.synthetic.num_images = total
    config.data.val_fraction = VALIDATION / total
    config.data.test_fraction = TEST / total
    # The tutorial rendered glyphs as typeset, each in a fixed box, and trained without
    # distortions: line framing, augmentation off.
    config.data.framing = "line"
    config.augment.enabled = False
    return config
