"""Every config file loads by path and by name, names the command that runs it, fits the
schema of configs/default.py, and is sized as documented."""

import ast
import glob
import os

import numpy as np
import pytest
from conftest import ROOT

from charjax import config_files, input_pipeline
from charjax.datasets.base import Dataset
from charjax.errors import CharjaxError

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "[!_]*.py")))


def _leaves(config, prefix=""):
    out = {}
    for key, value in config.items():
        if hasattr(value, "items"):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_starts_with_its_command_and_fits_the_schema(path):
    first = open(path).readline()
    assert first.startswith("# charjax train --config configs/" + os.path.basename(path))
    config = config_files.load(path)
    by_name = config_files.load(os.path.basename(path)[:-3])
    assert config.to_dict() == by_name.to_dict()
    schema = _leaves(config_files.load("default"))
    assert set(_leaves(config)) == set(schema), "a config may change fields, never add any"


def test_default_config_imports_only_ml_collections_and_comments_every_field():
    path = os.path.join(ROOT, "configs", "default.py")
    tree = ast.parse(open(path).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported == {"ml_collections"}
    lines = open(path).read().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("config.") or "ConfigDict()" in stripped:
            continue
        commented = "#" in stripped or lines[i - 1].strip().startswith("#")
        assert commented, f"configs/default.py:{i + 1} has no comment: {stripped}"


def test_a_missing_config_is_one_clear_error():
    with pytest.raises(CharjaxError, match="no config file 'nope'.*default"):
        config_files.load("nope")
    with pytest.raises(CharjaxError, match="no config file 'configs/nope.py'"):
        config_files.load("configs/nope.py")


def test_tutorial_config_gives_the_tutorials_exact_split():
    config = config_files.load("tutorial")
    n = config.data.synthetic.num_images
    labels = np.arange(n) % 62  # balanced, as the synthetic set is
    data = Dataset(np.zeros((n, 1, 1, 1), np.uint8), labels.astype(np.int32))
    splits = input_pipeline.split(data, config.data)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (44_788, 700, 11_198)
    for part, total in ((splits.validation, 700), (splits.test, 11_198)):
        per_class = np.bincount(part.labels, minlength=62)
        assert per_class.max() - per_class.min() <= 1  # still stratified
        assert per_class.sum() == total
    assert config.num_epochs == 30
