"""Shared fixtures: tiny configs so the whole suite stays fast on 2 CPU cores."""

from __future__ import annotations

import os
import sys

import ml_collections
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # so `configs` imports as a package-less module folder


# The default config shrunk to a few hundred images and one epoch.
TINY = {
    "num_epochs": 1,
    "batch_size": 32,
    "eval_batch_size": 64,
    "log_every_steps": 0,
    "data.synthetic.num_images": 62 * 6,
    "data.val_fraction": 0.17,
    "data.test_fraction": 0.17,
    # the tutorial's constant rate: a 1-epoch cosine decay would leave tests nothing to learn
    "optimizer.schedule": "constant",
    # distortions make every step heavier; tests/test_augment.py covers them
    "augment.enabled": False,
}


def tiny_overrides(**overrides) -> list[str]:
    """TINY (and `overrides`) as `--config.FIELD=VALUE` flags for the CLI."""
    return [f"--config.{k}={v}" for k, v in {**TINY, **overrides}.items()]


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """configs/default.py with TINY (and `overrides`, dotted keys) applied."""
    from configs import default

    config = default.get_config()
    for key, value in {**TINY, **overrides}.items():
        target = config
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return config


@pytest.fixture(autouse=True, scope="session")
def cache_dir(tmp_path_factory):
    """One synthetic-data cache for the whole session, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("charjax-cache")
    old = os.environ.get("CHARJAX_CACHE")
    os.environ["CHARJAX_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CHARJAX_CACHE", None)
    else:
        os.environ["CHARJAX_CACHE"] = old


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny two-epoch run shared by the eval, predict and reporting tests."""
    from charjax import train

    workdir = tmp_path_factory.mktemp("trained-run")
    result = train.train_and_evaluate(tiny_config(num_epochs=2), str(workdir))
    return workdir, result
