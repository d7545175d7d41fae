"""The command line: readable one-line errors, eval reproduces training, predict works.

All the command lines run through the real entry point, in one process (see cli.run_many).
"""

import json

import numpy as np
import pytest
from cli import assert_one_line_error, run_many
from PIL import Image

from charjax import charset, cli, evaluate, framing, inference

BAD_OVERRIDES = {
    "typo": ("--config.batch_sze=64", ["batch_sze", 'Did you mean "batch_size"']),
    "type": ("--config.batch_size=abc", ["batch_size", "abc"]),
    "nested": ("--config.model.tutorial.hiden=3", ["hiden"]),
}


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory):
    """Every command line of this file, run once; name -> cli.Result, and the files used."""
    workdir, _ = trained_run
    tmp = tmp_path_factory.mktemp("cli")
    predictor = inference.load(workdir)
    data = evaluate.load_eval_data("synthetic", predictor.config, "test")
    seen = np.stack([framing.prepare(x, predictor.framing).pixels for x in data.images])
    right = np.flatnonzero(predictor.probabilities(seen).argmax(-1) == data.labels)
    assert right.size, "the tiny run should get some test images right"
    i = int(right[0])
    # dark ink on white paper, as a user would scan it; predict must invert it back
    known = tmp / "known.png"
    Image.fromarray(255 - data.images[i, ..., 0]).convert("RGB").save(known)
    bad = tmp / "bad.png"
    bad.write_text("not an image")
    files = {"known": known, "label": charset.index_to_char(int(data.labels[i])), "bad": bad,
             "json": tmp / "eval.json", "empty": tmp / "empty", "workdir": workdir}
    files["empty"].mkdir()
    cases = {
        f"override-{name}": ["train", "--config", "configs/default.py",
                             "--workdir", str(tmp / name), flag]
        for name, (flag, _) in BAD_OVERRIDES.items()
    }
    cases |= {
        "no-config": ["train", "--workdir", "x"],
        "missing-config": ["train", "--config", "tutorail", "--workdir", "x"],
        "unknown-command": ["fly"],
        "unknown-dataset": ["train", "--config", "default", "--workdir", str(tmp / "ds"),
                            "--config.data.source=mnist-please"],
        "eval": ["eval", "--workdir", str(workdir), "--dataset", "synthetic",
                 "--json", str(files["json"])],
        "eval-empty": ["eval", "--workdir", str(files["empty"]), "--dataset", "synthetic"],
        "eval-adapted": ["eval", "--workdir", str(workdir), "--dataset", "synthetic",
                         "--adapt_class_mix", "--json", str(tmp / "adapted.json")],
        "predict": ["predict", "--workdir", str(workdir), "--top_k", "3", str(known)],
        # an ensemble of a run and itself: the run's own answers
        "predict-twice": ["predict", "--workdir", str(workdir), "--workdir", str(workdir),
                          "--top_k", "3", str(known)],
        "predict-bad": ["predict", "--workdir", str(workdir), str(bad)],
        # where a KeyError once printed a traceback: every command's help and missing flags
        **{f"help-{c}": [c, "--help"] for c in cli.COMMANDS},
        "serve-no-workdir": ["serve"],
        "export-no-out": ["export", "--workdir", str(workdir)],
        "export-no-workdir": ["export", "--out", str(tmp / "never.jaxexport")],
        "eval-no-workdir": ["eval", "--dataset", "synthetic"],
        "data-no-out": ["data", "preview", "--dataset", "synthetic"],
    }
    return run_many(cases), files


@pytest.mark.parametrize("name", sorted(BAD_OVERRIDES))
def test_bad_override_is_one_readable_line(runs, name):
    results, files = runs
    assert_one_line_error(results[f"override-{name}"], "charjax train: error:",
                          *BAD_OVERRIDES[name][1])
    workdir = files["json"].parent / name
    assert not workdir.exists(), "nothing may be written on a bad command line"


def test_missing_config_and_unknown_command(runs):
    results, _ = runs
    assert_one_line_error(results["no-config"], "--config")
    assert_one_line_error(results["missing-config"], "--config tutorail: no such file",
                          "a shipped config's name", "tutorial")
    assert_one_line_error(results["unknown-command"], "unknown command 'fly'")


def test_unknown_dataset_is_one_readable_line(runs):
    results, _ = runs
    assert_one_line_error(results["unknown-dataset"], "'mnist-please'", "unknown dataset spec")


def test_eval_reproduces_the_test_metrics_of_training(runs, trained_run):
    results, files = runs
    _, result = trained_run
    run = results["eval"]
    assert run.returncode == 0, run.stderr
    metrics = json.loads(files["json"].read_text())
    assert set(metrics) == {"accuracy", "loss", "loss_of", "top5_accuracy", "n", "per_class",
                            "most_confused"}
    errors = round((1 - metrics["accuracy"]) * metrics["n"])
    assert sum(n for _, _, n in metrics["most_confused"]) <= errors
    true, predicted, count = metrics["most_confused"][0]  # the tiny run makes mistakes
    assert true != predicted and count >= 1
    assert f"most confused (true->predicted): {true}->{predicted} {count}" in run.stdout
    assert metrics["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(result["test_loss"], rel=1e-4)
    assert metrics["top5_accuracy"] > metrics["accuracy"]
    assert set(metrics["per_class"]) == set(charset.CLASSES)  # each class has a test image
    assert f"{result['test_accuracy']:.4f}" in run.stdout


def test_eval_adapted_to_the_class_mix_reports_both_scores(runs, trained_run):
    results, files = runs
    run = results["eval-adapted"]
    assert run.returncode == 0, run.stderr
    metrics = json.loads((files["json"].parent / "adapted.json").read_text())
    counts = json.loads((files["workdir"] / "class_counts.json").read_text())["train"]
    assert len(counts) == 62 and sum(counts) == 62 * 6  # the tiny run's training split
    adapted = metrics["adapted_to_class_mix"]
    # recomputed here: the test split's probabilities re-weighted by the reported mix over
    # the recorded training mix must give back that mix (the EM's fixed point) and the
    # reported accuracy against the known labels
    predictor = inference.load(files["workdir"])
    data = evaluate.load_eval_data("synthetic", predictor.config, "test")
    mix = np.array([adapted["estimated_mix"][c] for c in charset.CLASSES])
    reweighted = predictor.probabilities(data.images, 512) * mix / (np.array(counts) / sum(counts))
    reweighted /= reweighted.sum(1, keepdims=True)
    np.testing.assert_allclose(reweighted.mean(0), mix, atol=1e-5)
    assert adapted["n"] == len(data.labels) == 62
    assert adapted["accuracy"] == pytest.approx(np.mean(reweighted.argmax(1) == data.labels))
    assert f"adapted to the estimated class mix: accuracy {adapted['accuracy']:.4f}" in run.stdout
    assert f"accuracy {trained_run[1]['test_accuracy']:.4f}" in run.stdout  # the plain score


def test_eval_of_an_empty_workdir_is_one_readable_line(runs):
    results, files = runs
    assert_one_line_error(results["eval-empty"], str(files["empty"]), "charjax train")


def test_predict_names_the_right_character_for_a_known_image(runs):
    results, files = runs
    run = results["predict"]
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    assert line.startswith(f"{files['known']}: {files['label']} ")
    assert len(line.split(": ", 1)[1].split("  ")) == 3


def test_predict_with_two_workdirs_answers_as_their_ensemble(runs):
    results, _ = runs
    assert results["predict-twice"].returncode == 0, results["predict-twice"].stderr
    assert results["predict-twice"].stdout == results["predict"].stdout


def test_predict_an_unreadable_image_is_one_readable_line(runs):
    results, files = runs
    assert_one_line_error(results["predict-bad"], str(files["bad"]))


def test_console_logging_writes_to_the_current_stderr(monkeypatch):
    """A harness may swap and close stderr between two commands run in one process."""
    import io
    import logging
    import sys

    from charjax import cli

    cli.setup_console_logging()
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("charjax.test").info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("charjax.test").info("two")
    assert second.getvalue().endswith(" two\n"), second.getvalue()


def test_a_config_file_loads_without_deprecation_warnings(tmp_path, capsys):
    """--config goes through config_files (importlib's exec_module), not load_module()."""
    import warnings

    from charjax import cli

    config = tmp_path / "mine.py"
    config.write_text("from charjax_configs import default\n\n\ndef get_config():\n"
                      "    config = default.get_config()\n    config.batch_size = 7\n"
                      "    return config\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the file loads, then the misspelt override stops the command before any training
        with pytest.raises(SystemExit) as stop:
            cli.run(["charjax", "train", "--config", str(config), "--workdir",
                     str(tmp_path / "w"), "--config.batch_size=8", "--config.batch_sze=9"])
    assert stop.value.code != 0
    assert "batch_sze" in capsys.readouterr().err


def test_every_command_helps_and_names_a_missing_flag(runs):
    """Run as the program runs: --help exits 0 with the command's usage, and a missing flag
    is one line with the usage, exit 2."""
    results, files = runs
    for command in cli.COMMANDS:
        helped = results[f"help-{command}"]
        assert helped.returncode == 0 and not helped.stderr, helped
        assert helped.stdout.startswith(f"usage: charjax {command} "), helped.stdout
    for name, flag in (("serve-no-workdir", "--workdir"), ("export-no-out", "--out"),
                       ("export-no-workdir", "--workdir"), ("eval-no-workdir", "--workdir"),
                       ("data-no-out", "--out")):
        command = name.split("-")[0]
        assert results[name].returncode == 2, (name, results[name])
        assert_one_line_error(results[name], f"charjax {command}: error: {flag} is required",
                              f"usage: charjax {command} ")
    assert not (files["json"].parent / "never.jaxexport").exists()
