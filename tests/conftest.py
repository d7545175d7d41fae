"""Shared fixtures: tiny configs so the whole suite stays fast on 2 CPU cores."""

from __future__ import annotations

import os
import sys

import ml_collections
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # so `configs` imports as a package-less module folder


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """The default config shrunk to a few hundred images and one epoch."""
    from configs import default

    config = default.get_config()
    config.num_epochs = 1
    config.batch_size = 32
    config.eval_batch_size = 64
    config.log_every_steps = 0
    config.data.synthetic.num_images = 62 * 6
    config.data.val_fraction = 0.17
    config.data.test_fraction = 0.17
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return config


@pytest.fixture
def cache_dir(tmp_path_factory, monkeypatch):
    """One synthetic-data cache for the whole session, never the user's ~/.cache."""
    path = tmp_path_factory.getbasetemp() / "charjax-cache"
    monkeypatch.setenv("CHARJAX_CACHE", str(path))
    return path
