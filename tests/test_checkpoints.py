"""Orbax retention, kill-and-resume, init_from and checkpoint errors."""

import json
import logging
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cli import run_many
from conftest import tiny_config, tiny_overrides

from charjax import checkpoints, kernels, run_folder, train
from charjax.errors import CheckpointError


def test_best_k_retention_keeps_the_latest_too(tmp_path):
    mngr = checkpoints.manager(tmp_path, keep_best=2)
    state = {"w": jnp.arange(3.0)}
    for step, acc in {1: 0.5, 2: 0.7, 3: 0.6, 4: 0.65, 5: 0.55}.items():
        checkpoints.save(mngr, step, state, {"c": 1}, [], {"val_accuracy": acc})
        mngr.wait_until_finished()
    assert mngr.all_steps() == [2, 4, 5]
    assert mngr.best_step() == 2 and mngr.latest_step() == 5
    restored, config, history = checkpoints.restore(mngr, 5, state)
    np.testing.assert_array_equal(restored["w"], state["w"])
    assert config == {"c": 1} and history == []
    mngr.close()


def _final_state(workdir):
    mngr = checkpoints.manager(workdir, create=False)
    config = tiny_config(num_epochs=2)
    abstract = jax.eval_shape(lambda: train.create_train_state(config, jax.random.key(0)))
    state, _, history = checkpoints.restore(mngr, mngr.latest_step(), abstract)
    mngr.close()
    return state, history


# Run in the killed process before the command: SIGKILL right after epoch 2's checkpoint write
# starts (Orbax writes in the background, so the kill lands mid-write or just after; epoch 1's
# write has finished, Orbax waits for it). A fixed kill point instead of a timer: a timer
# raced the run on fast machines and the run finished first.
_KILL_AT_EPOCH_2 = """
import os, signal
from charjax import checkpoints

write = checkpoints.save

def write_then_die(mngr, step, *args, **kwargs):
    write(mngr, step, *args, **kwargs)
    if step == 2:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoints.save = write_then_die
"""


def test_sigkill_then_resume_gives_bit_identical_weights(trained_run, tmp_path):
    straight, _ = trained_run  # the same two epochs, uninterrupted
    killed = tmp_path / "killed"
    train_args = ["train", "--config", "default", "--workdir", str(killed),
                  *tiny_overrides(num_epochs=2)]
    runs = run_many({"killed": (train_args, _KILL_AT_EPOCH_2), "resumed": train_args})
    assert runs["killed"].returncode == -signal.SIGKILL, runs["killed"].stderr
    assert "best epoch" not in runs["killed"].stderr  # it died before scoring the test split
    assert runs["resumed"].returncode == 0, runs["resumed"].stderr
    assert "resuming from the checkpoint of epoch 1" in runs["resumed"].stderr
    # with the oneDNN kernels where they load: they must be deterministic across processes
    on_cpu_kernels = kernels.available() and jax.default_backend() == "cpu"
    assert ("model kernels: oneDNN" in runs["resumed"].stderr) == on_cpu_kernels
    assert "deterministic GPU ops: on" in runs["resumed"].stderr
    # the killed run compiled the steps into the test run's cache; the resumed one, another
    # process, loads them (the oneDNN kernels' FFI targets registered first) and computes
    # the same bits, checked below
    assert "compiled train step in " in runs["resumed"].stderr
    assert "train step in " in runs["resumed"].stderr.split("(from cache)")[0]
    assert not [p for p in os.listdir(killed / "checkpoints") if "tmp" in p]

    (a, history_a), (b, history_b) = _final_state(straight), _final_state(killed)
    assert int(a.step) == int(b.step)
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in history_a]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in history_b]


def test_resume_with_another_config_names_the_fields(trained_run, tmp_path):
    import shutil

    workdir = tmp_path / "run"  # a copy: the refused run takes the workdir's lock
    shutil.copytree(trained_run[0], workdir)
    before = sorted(os.listdir(workdir / "checkpoints"))
    config_json = (workdir / "config.json").read_text()
    with pytest.raises(CheckpointError, match=r"learning_rate: 0.002 -> 0.5"):
        train.train_and_evaluate(tiny_config(num_epochs=3, learning_rate=0.5), str(workdir))
    assert sorted(os.listdir(workdir / "checkpoints")) == before
    assert (workdir / "config.json").read_text() == config_json


def test_init_from_another_model_is_refused(trained_run, tmp_path):
    workdir, _ = trained_run
    config = tiny_config(init_from=str(workdir))
    config.model.tutorial.hidden = 64
    with pytest.raises(CheckpointError, match="another model"):
        train.train_and_evaluate(config, str(tmp_path / "new"))


def test_init_from_starts_from_the_best_weights(trained_run, tmp_path):
    workdir, _ = trained_run
    best, _ = checkpoints.load_for_inference(workdir)
    config = tiny_config(init_from=str(workdir))
    key = jax.random.key(config.seed)
    state = run_folder.init_from(train.create_train_state(config, key), str(workdir),
                             config.data.framing)
    for x, y in zip(jax.tree_util.tree_leaves(state.params),
                    jax.tree_util.tree_leaves(best.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(state.step) == 0


def test_init_from_seeds_the_moving_average_and_warns_on_framing(trained_run, caplog):
    workdir, _ = trained_run
    best, _ = checkpoints.load_for_inference(workdir)
    config = tiny_config(init_from=str(workdir), ema_decay=0.99)
    fresh = train.create_train_state(config, jax.random.key(config.seed))
    with caplog.at_level(logging.WARNING, logger="charjax"):
        state = run_folder.init_from(fresh, str(workdir), framing="line")
    for x, y in zip(jax.tree_util.tree_leaves(state.ema_params),
                    jax.tree_util.tree_leaves(best.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert "fit-framed" in caplog.text and "line-framed" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="charjax"):
        run_folder.init_from(fresh, str(workdir), framing="fit")
    assert "framed" not in caplog.text


def test_workdir_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints here"):
        checkpoints.load_for_inference(tmp_path)


def test_corrupt_checkpoint_is_a_clear_error(trained_run, tmp_path):
    import shutil

    workdir, result = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    step_dir = copy / "checkpoints" / str(result["best_epoch"]) / "state"
    for root, _, files in os.walk(step_dir):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be restored"):
        checkpoints.load_for_inference(copy)


def test_config_json_round_trips(trained_run):
    workdir, _ = trained_run
    stored = json.loads((workdir / "config.json").read_text())
    _, config = checkpoints.load_for_inference(workdir)
    assert json.loads(config.to_json()) == stored


def test_a_stored_config_of_an_older_run_is_upgraded_to_the_schema():
    stored = run_folder.resolved_config(tiny_config())
    old_model = {"name": "compact_vgg", "hidden": 64, "dropout": 0.3, "impl": "fast"}
    stored["model"] = old_model  # model settings before per-model blocks
    stored["data"]["synthetic"]["framing"] = stored["data"].pop("framing")  # before data.framing
    stored["data"]["synthetic"]["framing"] = "fit"
    del stored["data"]["val_count"], stored["data"]["test_count"]  # fields added since
    config = checkpoints.upgrade_config(stored)
    assert config.model.name == "compact_vgg" and config.model.impl == "fast"
    assert config.model.tutorial.hidden == 64  # hidden was read by the tutorial model only
    assert config.model.compact_vgg.hidden == 256 and config.model.compact_vgg.dropout == 0.3
    assert config.data.framing == "fit" and "framing" not in config.data.synthetic
    assert config.data.val_count is None and config.data.test_count is None
    assert config.learning_rate == stored["learning_rate"]
    state = jax.eval_shape(lambda: train.create_train_state(config, jax.random.key(0)))
    assert state.params["top"]["hidden"]["kernel"].shape[-1] == 256
