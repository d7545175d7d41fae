"""Ensembles: combining rules, and a two-member run in one command."""

import json

import numpy as np
import pytest
from cli import run_many
from conftest import tiny_overrides

import charjax
from charjax import charset, evaluate, inference
from charjax.errors import CheckpointError


def test_mean_probability_and_vote_combine_differently():
    # three models, two samples, three classes (padded to the full width by zeros)
    a = np.array([[0.6, 0.4, 0.0], [0.1, 0.2, 0.7]])
    b = np.array([[0.0, 0.55, 0.45], [0.2, 0.5, 0.3]])
    c = np.array([[0.0, 0.51, 0.49], [0.3, 0.4, 0.3]])
    mean = inference.combine([a, b, c])
    vote = inference.combine([a, b, c], vote=True)
    np.testing.assert_allclose(mean, (a + b + c) / 3)
    assert mean.argmax(-1).tolist() == [1, 2]
    assert vote.argmax(-1).tolist() == [1, 1]
    # sample 0: class 1 has two of three votes
    assert vote[0, 1] == pytest.approx(2 / 3, abs=1e-5)


def test_vote_outvotes_one_confident_model():
    confident = np.array([[0.99, 0.01]])
    unsure = np.array([[0.4, 0.6]])
    assert inference.combine([confident, unsure, unsure]).argmax(-1)[0] == 0
    assert inference.combine([confident, unsure, unsure], vote=True).argmax(-1)[0] == 1


def test_an_ensemble_is_a_predictor_and_answers_the_recognizer(trained_run):
    first, second = (inference.load(trained_run[0], step=s) for s in (1, 2))
    images = evaluate.load_eval_data("synthetic", first.config, "test").images[:20]
    p, q = first.probabilities(images), second.probabilities(images)
    assert np.abs(p - q).max() > 1e-3  # two epochs: two models
    mean = inference.Ensemble([first, second])
    np.testing.assert_allclose(mean.probabilities(images), (p + q) / 2, rtol=1e-6)
    vote = inference.Ensemble([first, second, second], vote=True).probabilities(images)
    np.testing.assert_array_equal(vote.argmax(-1), q.argmax(-1))  # two votes of three
    loaded = inference.load([trained_run[0], trained_run[0]], vote=True)
    assert isinstance(loaded, inference.Ensemble) and loaded.vote and len(loaded.members) == 2
    rec = charjax.Recognizer(mean)  # so predict, read and serve
    (top,) = rec.predict(images[:1, ..., 0], top_k=2)
    want = np.argsort(-mean.probabilities(rec.prepare(images[0, ..., 0]).pixels[None])[0])
    assert [c for c, _ in top] == [charset.CLASSES[i] for i in want[:2]]


def test_runs_framed_differently_make_no_ensemble(trained_run):
    run = inference.load(trained_run[0])
    config = run.config.copy_and_resolve_references()
    config.data.framing = "line" if run.framing == "fit" else "fit"
    with pytest.raises(CheckpointError, match="must share a framing"):
        inference.Ensemble([run, inference.Predictor(run.model, run.variables, config, "b")])


def test_metrics_from_probabilities():
    probs = np.full((4, 62), 0.001)
    probs[np.arange(4), [0, 1, 2, 3]] = 0.9
    result = evaluate.metrics_from_probabilities(probs, np.array([0, 1, 2, 4]))
    assert result["accuracy"] == 0.75 and result["n"] == 4
    assert result["per_class"] == {"0": 1.0, "1": 1.0, "2": 1.0, "4": 0.0}


def test_two_member_ensemble_in_one_command(tmp_path):
    out = tmp_path / "eval.json"
    runs = run_many({
        "train": ["train", "--config", "default", "--workdir", str(tmp_path),
                  *tiny_overrides(ensemble_members=2),
                  "--config.report.tensorboard=False", "--config.report.plots=False"],
        # eval with both workdirs must reproduce the ensemble's figure
        "eval": ["eval", "--workdir", str(tmp_path / "member-0"), "--workdir",
                 str(tmp_path / "member-1"), "--dataset", "synthetic", "--json", str(out)],
    })
    assert runs["train"].returncode == 0, runs["train"].stderr
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert [m["seed"] for m in result["members"]] == [0, 1]
    members = [json.loads((tmp_path / f"member-{i}" / "metrics.json").read_text())
               for i in range(2)]
    assert members[0]["epochs"][0]["train_loss"] != members[1]["epochs"][0]["train_loss"]
    assert result["n"] == 62 and result["ensemble_mean_accuracy"] >= 4 / 62  # above chance
    assert runs["eval"].returncode == 0, runs["eval"].stderr
    scored = json.loads(out.read_text())
    assert scored["accuracy"] == pytest.approx(result["ensemble_mean_accuracy"])
    assert [list(p) for p in result["most_confused"]] == scored["most_confused"]


def test_most_confused_pairs_count_the_mistakes():
    probs = np.full((5, 62), 0.001)
    probs[np.arange(5), [1, 1, 1, 0, 2]] = 0.9  # predicted
    labels = np.array([0, 0, 1, 0, 3])  # true: 0->1 twice, 0->0, 3->2 once, 1->1
    pairs = evaluate.most_confused_pairs(probs, labels)
    assert pairs == [("0", "1", 2), ("3", "2", 1)]
