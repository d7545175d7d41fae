# charjax train --config configs/tutorial.py --workdir runs/tutorial
"""The tutorial's own run on our embedded data: 44,788 train / 700 validation / 11,198 test
images, the tutorial model, Adam 1e-3 (constant, as it had), batch 128, 30 epochs; the best
weights by validation accuracy are scored on the test split.

The split is stratified per class, so its sizes can differ from those by a few images of
rounding (the run logs the exact counts). About 25 minutes on a 2-core CPU.
"""

import importlib.util
import os

import ml_collections

TRAIN, VALIDATION, TEST = 44_788, 700, 11_198


def _default_config() -> ml_collections.ConfigDict:
    """configs/default.py, loaded by path: configs/ is not a package."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "charjax_config_default", os.path.join(here, "default.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config() -> ml_collections.ConfigDict:
    config = _default_config()
    total = TRAIN + VALIDATION + TEST
    config.num_epochs = 30
    config.optimizer.schedule = "constant"
    config.data.synthetic.num_images = total
    config.data.val_fraction = VALIDATION / total
    config.data.test_fraction = TEST / total
    return config
