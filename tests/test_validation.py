"""Config checks, split checks, divergence, strict JSON and the ensemble vote's loss."""

import json
import math
import os

import numpy as np
import pytest
from conftest import ROOT, tiny_config, tiny_overrides

from charjax import checkpoints, cli, evaluate, framing, jsonio, models, optim, validation
from charjax.errors import CheckpointError, ConfigError
from charjax.inference import combine


def test_the_default_and_every_shipped_config_pass():
    from charjax import config_files

    for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        if name.endswith(".py") and not name.startswith("_"):
            validation.check_config(config_files.load(os.path.join(ROOT, "configs", name)))


def test_the_names_it_accepts_are_the_ones_the_code_accepts():
    """The lists validation checks against are the implementations' own."""
    for name in models.model_choices():
        config = tiny_config()
        config.model.name = name
        models.create_model(config.model, models.PRECISIONS[-1])
    for name in optim.NAMES:
        for schedule in optim.SCHEDULES:
            config = tiny_config()
            config.optimizer.name, config.optimizer.schedule = name, schedule
            optim.make_optimizer(config, 10)
    for name in framing.FRAMINGS:
        framing.check_framing(name)


def test_a_missing_field_is_named():
    config = tiny_config()
    with config.unlocked():
        del config.optimizer["schedule"]
    with pytest.raises(ConfigError, match=r"config.optimizer.schedule is missing"):
        validation.check_config(config)


def test_empty_splits_suggest_a_fraction_that_works():
    config = tiny_config()
    config.data.val_fraction = 0.1
    with pytest.raises(ConfigError, match=r"val_fraction=0.1: leaves 0 validation images .* "
                                          r"raise --config.data.val_fraction to 0.11 \(or more"):
        validation.check_splits(config, {"train": 300, "validation": 0, "test": 62},
                                np.full(62, 5))
    config.data.test_fraction = 0.1
    with pytest.raises(ConfigError, match=r"leaves 0 validation and 0 test images .* raise "
                                          r"--config.data.val_fraction to 0.11 and "
                                          r"--config.data.test_fraction to 0.11"):
        validation.check_splits(config, {"train": 310, "validation": 0, "test": 0},
                                np.full(62, 5))
    config.data.val_fraction = 0.11
    validation.check_splits(config, {"train": 200, "validation": 62, "test": 62},
                            np.full(62, 5))


def test_non_finite_loss_names_the_epoch_and_a_lower_learning_rate():
    with pytest.raises(Exception, match=r"epoch 3: train_loss nan.*learning_rate=1e\+09 now, "
                                        r"try 1e\+08"):
        validation.check_finite(3, {"train_loss": math.nan, "val_loss": 1.0}, 1e9)
    validation.check_finite(3, {"train_loss": 0.5, "val_loss": 1.0}, 1e-3)


def _no_constants(token: str) -> None:
    raise AssertionError(f"{token} is not JSON")


def test_a_diverging_run_stops_keeps_no_nan_checkpoint_and_writes_strict_json(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    workdir = tmp_path / "nan"
    argv = ["charjax", "train", "--config", "configs/default.py", "--workdir", str(workdir),
            *tiny_overrides(num_epochs=3, learning_rate=1e9)]
    with pytest.raises(SystemExit) as exit_info:
        cli.run(argv)
    assert exit_info.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("charjax train: error: epoch ") and "lower the learning rate" in last
    for root, _, files in os.walk(workdir):
        for name in files:
            if name.endswith(".json") or name in ("metrics", "_CHECKPOINT_METADATA"):
                with open(os.path.join(root, name)) as f:
                    json.loads(f.read(), parse_constant=_no_constants)
    if (workdir / "checkpoints").exists():  # the epochs before the blow-up, all finite
        state, _ = checkpoints.load_for_inference(workdir)
        assert checkpoints.all_finite(state.params)
    else:
        with pytest.raises(CheckpointError):
            checkpoints.load_for_inference(workdir)


def test_json_files_are_strict():
    text = jsonio.dumps({"a": math.nan, "b": [math.inf, 1.5], "c": np.float32(2.0)})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": 2.0}


def test_the_vote_reports_the_mean_probability_loss():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 62, 50)
    members = [rng.dirichlet(np.ones(62), 50) for _ in range(3)]
    mean = evaluate.metrics_from_probabilities(combine(members), labels)
    voted, scores = evaluate.ensemble_metrics(members, labels, vote=True)
    assert voted["loss"] == pytest.approx(mean["loss"])
    assert voted["loss_of"] == "mean probability"
    assert voted["accuracy"] == evaluate.metrics_from_probabilities(scores, labels)["accuracy"]
    # the old way, a cross-entropy on vote shares, gives another number
    shares = evaluate.metrics_from_probabilities(combine(members, vote=True), labels)
    assert shares["loss"] != pytest.approx(mean["loss"])
