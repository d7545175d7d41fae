"""Ensembles: train N members that differ only in their seed, then let them vote.

The tutorial proposed combining weak models by voting; here each member is an ordinary
run in its own sub-workdir (so each resumes, evaluates and predicts on its own), and
the ensemble is scored on the test split they share.
"""

from __future__ import annotations

import logging
import os

import ml_collections

from charjax import distributed, evaluate, inference, jsonio, train, validation
from charjax import workdir as workdir_lib
from charjax.errors import WorkdirError

log = logging.getLogger(__name__)


def member_workdir(workdir: str, index: int) -> str:
    return os.path.join(workdir, f"member-{index}")


def member_config(config: ml_collections.ConfigDict, index: int) -> ml_collections.ConfigDict:
    """The config of member `index`: the same data split, its own seed."""
    member = ml_collections.ConfigDict(config.to_dict())
    member.seed = config.seed + index
    member.ensemble_members = 1
    return member


def train_ensemble(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config.ensemble_members` members and writes WORKDIR/metrics.json with each
    member's test accuracy and the ensemble's, by mean probability and by majority vote."""
    validation.check_config(config)
    workdir_lib.check_usable(workdir)
    for name in ("checkpoints", "config.json"):
        if os.path.exists(os.path.join(workdir, name)):
            raise WorkdirError(
                f"--workdir {workdir}: holds a single run ({name}); an ensemble would write its "
                "metrics.json over that run's; train the ensemble into a new --workdir")
    with workdir_lib.claim(workdir, enabled=distributed.is_main_process()):
        return _train_members(config, workdir)


def _train_members(config: ml_collections.ConfigDict, workdir: str) -> dict:
    count = config.ensemble_members
    members = []
    for index in range(count):
        log.info("ensemble member %d/%d (seed %d)", index + 1, count, config.seed + index)
        members.append(
            train.train_and_evaluate(member_config(config, index), member_workdir(workdir, index))
        )
    ensemble = inference.load([member_workdir(workdir, i) for i in range(count)])
    test = evaluate.load_eval_data(config.data.source, config, "test")
    probabilities = [m.probabilities(test.images, evaluate.PREDICT_BATCH) for m in ensemble.members]
    combined = inference.combine(probabilities)
    mean = evaluate.metrics_from_probabilities(combined, test.labels)
    vote = evaluate.metrics_from_probabilities(
        inference.combine(probabilities, vote=True), test.labels)
    result = {
        "members": [
            {"workdir": member_workdir(workdir, i), "seed": config.seed + i,
             "test_accuracy": m["test_accuracy"], "train_seconds": m["train_seconds"]}
            for i, m in enumerate(members)
        ],
        "ensemble_mean_accuracy": mean["accuracy"],
        "ensemble_vote_accuracy": vote["accuracy"],
        "ensemble_mean_loss": mean["loss"],
        "most_confused": evaluate.most_confused_pairs(combined, test.labels),
        "n": mean["n"],
    }
    if distributed.is_main_process():
        jsonio.write(os.path.join(workdir, "metrics.json"), result)
    log.info(
        "ensemble of %d: test accuracy %.4f (mean probability), %.4f (vote); members %s",
        count, mean["accuracy"], vote["accuracy"],
        ", ".join(f"{m['test_accuracy']:.4f}" for m in members),
    )
    log.info("ensemble's most confused (true->predicted): %s",
             ", ".join(f"{t}->{p} {n}" for t, p, n in result["most_confused"][:5]))
    return result
