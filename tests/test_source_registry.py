"""A data source is one module that registers itself, plus its config block: the loaders,
validation, the errors and `--help` find it in the registry, nothing else changes."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest
from conftest import tiny_config

from charjax import cli, datasets, validation
from charjax.datasets import sources
from charjax.datasets.base import Dataset
from charjax.errors import ConfigError, DataError


def _load_stripes(every: str, data: ml_collections.ConfigDict) -> tuple[Dataset, list]:
    """Two classes: blank images (0) and white stripes `every` columns apart (1)."""
    labels = np.arange(2 * data.stripes.per_class, dtype=np.int32) % 2
    images = np.zeros((len(labels), 48, 48, 1), np.uint8)
    images[labels == 1, :, :: int(every)] = 255
    return Dataset(images, labels), []


def _check_stripes(checker) -> None:
    checker.integer("data.stripes.per_class", 1, 10, " (images of each class)")


@pytest.fixture
def stripes(monkeypatch):
    """The toy source, registered for one test (the registry is restored after it)."""
    monkeypatch.setattr(sources, "_REGISTRY", dict(sources._REGISTRY))
    sources.register(sources.Source("stripes", "EVERY", "a toy: white stripes EVERY columns "
                                    "apart", _load_stripes, _check_stripes))


def _config(per_class: int = 3, **overrides) -> ml_collections.ConfigDict:
    config = tiny_config(**{"data.source": "stripes:4", **overrides})
    config.data.stripes = ml_collections.ConfigDict({"per_class": per_class})
    return config


def test_a_registered_source_loads_through_the_public_functions(stripes, tmp_path):
    config = _config()
    dataset = datasets.load("stripes:4", config.data)
    assert len(dataset) == 6 and dataset.labels.tolist() == [0, 1] * 3
    assert dataset.images[1, 0, :9, 0].tolist() == [255, 0, 0, 0, 255, 0, 0, 0, 255]
    trained, skipped = datasets.load_for_training(config.data, tmp_path)
    np.testing.assert_array_equal(trained.images, dataset.images)
    assert skipped == []


def test_validation_checks_its_block_only_where_it_is_used(stripes):
    validation.check_config(_config())
    with pytest.raises(ConfigError, match=r"data.stripes.per_class=0: .*images of each class"):
        validation.check_config(_config(per_class=0))
    with pytest.raises(ConfigError, match=r"data.stripes.per_class=0"):
        validation.check_config(_config(0, **{"data.source": "synthetic",
                                              "data.train_mix": "stripes:2"}))
    validation.check_config(_config(0, **{"data.source": "synthetic"}))  # not its business


def test_help_and_errors_list_it(stripes):
    with pytest.raises(ConfigError, match=r"unknown dataset spec; use one of .*stripes:EVERY"):
        validation.check_config(_config(**{"data.source": "stripes"}))  # EVERY is missing
    with pytest.raises(DataError, match=r"unknown dataset spec 'stripes:'; .*stripes:EVERY"):
        datasets.load("stripes:", _config().data)
    listed = cli._overview().split("dataset specs")[1]
    assert "white stripes EVERY columns" in listed
    specs = [line.split()[0] for line in listed.splitlines() if line[:3].strip() and
             line.startswith("  ")]
    assert specs == ["synthetic", "npz:PATH", "folder:PATH", "tfds:NAME[:SPLIT]", "stripes:EVERY"]


def test_specs_name_a_source_and_its_argument():
    assert sources.find("tfds:emnist/byclass:train[:10]")[1] == "emnist/byclass:train[:10]"
    assert sources.find("synthetic")[0].usage == "synthetic"
    for spec in ("synthetic:", "synthetic:x", "npz:", "npz", "mnist", ""):
        assert sources.find(spec) is None, spec
    assert sources.usages().startswith("synthetic, npz:PATH, folder:PATH, tfds:NAME[:SPLIT]")
