# charjax train --config configs/emnist.py --workdir runs/emnist
"""The tutorial model on real handwriting: 30,000 EMNIST ByClass characters (62 classes).

Data: shared/data/emnist-byclass/emnist_byclass_30k.npz (see its README), found relative
to this file (../../shared/...), so it works from a clone placed beside shared/ whatever
the working directory. Split: stratified per class, validation 0.1, test 0.2, split_seed 0
(21,000 / 3,000 / 6,000 images, give or take rounding per class) — quote it with any figure;
it is not comparable with results on the full EMNIST test set.

Quick smoke run: add --config.num_epochs=1.
"""

import importlib.util
import os

import ml_collections

HERE = os.path.dirname(os.path.abspath(__file__))
EMNIST_30K = os.path.normpath(
    os.path.join(HERE, "..", "..", "shared", "data", "emnist-byclass", "emnist_byclass_30k.npz")
)


def _default_config() -> ml_collections.ConfigDict:
    """configs/default.py, loaded by path: configs/ is not a package on sys.path."""
    spec = importlib.util.spec_from_file_location("charjax_config_default",
                                                  os.path.join(HERE, "default.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config() -> ml_collections.ConfigDict:
    config = _default_config()
    config.num_epochs = 10
    config.data.source = f"npz:{EMNIST_30K}"
    config.data.val_fraction = 0.1
    config.data.test_fraction = 0.2
    config.data.split_seed = 0
    return config
