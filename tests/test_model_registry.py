"""A model is one module that registers itself, plus its config block: nothing else changes."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from cli import run_many
from conftest import TINY, tiny_config

from charjax import models, validation
from charjax.errors import ConfigError

# A config file as a user would write it: it registers a toy model (one module's worth of
# code) and adds the model's own block to the default config.
TOY_CONFIG = '''
import flax.linen as nn
import ml_collections

from charjax import charset, models
from charjax_configs import default


class Toy(nn.Module):
    hidden: int
    dropout: float
    dtype: object

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x.reshape((x.shape[0], -1))))
        self.sow("intermediates", "features", x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(charset.NUM_CLASSES, dtype=self.dtype)(x)


models.register("toy", lambda block, dtype, _: Toy(block.hidden, block.dropout, dtype),
                models.check_hidden_and_dropout)


def get_config():
    config = default.get_config()
    config.model.name = "toy"
    config.model.toy = ml_collections.ConfigDict({"hidden": 16, "dropout": 0.0})
    return config
'''


def test_a_registered_model_trains_through_the_cli(tmp_path):
    path = tmp_path / "toy_config.py"
    path.write_text(textwrap.dedent(TOY_CONFIG))
    workdir = tmp_path / "run"
    flags = [f"--config.{k}={v}" for k, v in TINY.items() if not k.startswith("model.")]
    result = run_many({"train": ["train", "--config", str(path), "--workdir", str(workdir),
                                 *flags, "--config.report.projector_max=0"]})["train"]
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1
    stored = json.loads((workdir / "config.json").read_text())
    assert stored["model"]["name"] == "toy" and stored["model"]["toy"]["hidden"] == 16
    assert os.path.isdir(workdir / "checkpoints")


def test_the_registry_checks_each_model_by_its_own_block():
    config = tiny_config(**{"model.name": "compact_vgg", "model.compact_vgg.hidden": 0})
    with pytest.raises(ConfigError, match="model.compact_vgg.hidden"):
        validation.check_config(config)
    # another model's block is not this model's business
    validation.check_config(tiny_config(**{"model.compact_vgg.hidden": 0}))


def test_numbers_and_names_resolve_through_the_registry():
    assert models.canonical_name(1) == "tutorial" and models.canonical_name("3") == "compact_vgg"
    assert set(models.model_names()) >= {"tutorial", "tutorial_bn", "compact_vgg"}
    with pytest.raises(ValueError, match="registered already"):
        models.register("toy2", lambda *_: None, models.check_hidden_and_dropout, number="1")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        models.entry("nope")
