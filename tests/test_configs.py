"""Every config file loads, names the command that runs it, and is sized as documented."""

import glob
import os

import pytest
from conftest import ROOT

from charjax import config_files, input_pipeline
from charjax.datasets.base import Dataset

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


def _load(path):
    return config_files.load(path)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_starts_with_its_command_and_loads(path):
    first = open(path).readline()
    assert first.startswith("# charjax train --config configs/" + os.path.basename(path))
    config = _load(path)
    for field in ("seed", "num_epochs", "batch_size", "learning_rate"):
        assert field in config
    assert config.model.name and config.data.source and "enabled" in config.augment


def test_tutorial_config_reproduces_the_tutorials_split_sizes():
    import numpy as np

    config = _load(os.path.join(ROOT, "configs", "tutorial.py"))
    n = config.data.synthetic.num_images
    labels = np.arange(n) % 62  # balanced, as the synthetic set is
    data = Dataset(np.zeros((n, 1, 1, 1), np.uint8), labels.astype(np.int32))
    splits = input_pipeline.stratified_split(
        data, config.data.val_fraction, config.data.test_fraction, config.data.split_seed
    )
    sizes = len(splits.train), len(splits.validation), len(splits.test)
    assert abs(sizes[0] - 44_788) <= 62 and abs(sizes[1] - 700) <= 62
    assert abs(sizes[2] - 11_198) <= 62 and sum(sizes) == n
    assert config.num_epochs == 30
