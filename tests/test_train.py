"""The train step's maths and the epoch loop, on tiny data."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import jitted_train_step, tiny_config

from charjax import checkpoints, train


def _random_batch(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": jnp.asarray(rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8)),
        "label": jnp.asarray(rng.integers(0, 62, n, dtype=np.int32)),
    }


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_train_step_lowers_the_loss_on_a_fixed_batch():
    config = tiny_config()
    state = train.create_train_state(config, jax.random.key(0))
    batch = _random_batch(n=32)
    losses = []
    for i in range(25):
        state, metrics = jitted_train_step(state, batch, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0], losses
    assert int(state.step) == 25


def test_train_step_is_pure():
    config = tiny_config(**{"model.tutorial.dropout": 0.5})
    state = train.create_train_state(config, jax.random.key(0))
    batch = _random_batch(n=32)
    a, ma = jitted_train_step(state, batch, jax.random.key(7))
    b, mb = jitted_train_step(state, batch, jax.random.key(7))
    c, mc = jitted_train_step(state, batch, jax.random.key(8))
    assert float(ma["loss"]) == float(mb["loss"])
    for x, y in zip(_leaves(a.params), _leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
    # a different dropout key gives a different update
    pairs = zip(_leaves(a.params), _leaves(c.params), strict=True)
    assert any(not np.array_equal(x, y) for x, y in pairs)


def _tiny_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 62, n).astype(np.int32)
    images = rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8)
    return jnp.asarray(images), jnp.asarray(labels)


def _one_epoch(seed, augment=False, steps_per_call=1, reporter=None, n=256):
    config = tiny_config(seed=seed)
    config.augment.enabled = augment
    key = jax.random.key(config.seed)
    state = train.create_train_state(config, jax.random.fold_in(key, 0))
    step = train.make_device_train_step(32, config.augment if augment else None,
                                        steps_per_call=steps_per_call)
    return train.train_epoch(state, step, _tiny_data(n), key, 1, 32, log_every=3 if reporter
                             else 0, reporter=reporter, steps_per_call=steps_per_call)


class _Recorder:
    """A reporter that keeps what the epoch loop told it: step metrics and bar updates."""

    def __init__(self):
        self.steps, self.bar_updates = [], []

    def progress(self, total, desc):
        recorder = self

        class Bar:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def set_postfix(self, **kwargs):
                pass

            def update(self, n):
                recorder.bar_updates.append(n)

        return Bar()

    def step(self, step, metrics):
        self.steps.append((step, metrics))


def test_same_seed_same_epoch_other_seed_or_augmentation_another():
    # Augmented, so the distortions' draws are covered by the determinism check too.
    (s1, m1), (s2, m2) = _one_epoch(0, augment=True), _one_epoch(0, augment=True)
    assert m1 == m2
    for x, y in zip(_leaves(s1.params), _leaves(s2.params), strict=True):
        np.testing.assert_array_equal(x, y)
    assert _one_epoch(1, augment=True)[1] != m1  # another seed
    assert _one_epoch(0, augment=False)[1] != m1  # no augmentation


def test_steps_per_call_gives_the_same_weights_metrics_and_step_curves():
    # 8 steps of 32: with 3 steps per call the last call runs 1 step past the epoch's end,
    # masked; log periods of 3 steps end inside calls and across them
    one, three = _Recorder(), _Recorder()
    s1, m1 = _one_epoch(0, augment=True, reporter=one)
    s3, m3 = _one_epoch(0, augment=True, steps_per_call=3, reporter=three)
    assert int(s1.step) == int(s3.step) == 8
    for x, y in zip(_leaves(s1), _leaves(s3), strict=True):
        np.testing.assert_array_equal(x, y)
    assert m1 == m3
    assert [s for s, _ in one.steps] == [3, 6] and one.steps == three.steps
    assert one.bar_updates == three.bar_updates == [3, 3]
    assert m1 != one.steps[0][1]  # the periods' means are their own


def test_a_tiny_run_compiles_few_programs(trained_run_compiles):
    # 10 in a fresh process: the train and eval steps, the epoch order, the state's
    # initialisation, the run's keys, the learning rate, the projector's features and 3 for
    # the TensorBoard sample images (their normalisation, op by op, and staging). A program
    # per batch shape or per eager array operation would show up here.
    assert len(trained_run_compiles) <= 10, trained_run_compiles
    # one train step and one eval step (each run jits its own, so they always show)
    assert trained_run_compiles.count("jit(step)") == 2, trained_run_compiles


def test_too_few_images_for_one_batch_is_a_clear_error():
    config = tiny_config()
    state = train.create_train_state(config, jax.random.key(0))
    step = train.make_device_train_step(32, None)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train.train_epoch(state, step, _tiny_data(n=10), jax.random.key(0), 1, 32)


def test_end_to_end_tiny_run_writes_metrics_json(trained_run):
    workdir, result = trained_run
    written = json.loads((workdir / "metrics.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert set(written) == {
        "epochs", "best_epoch", "best_val_accuracy", "test_loss", "test_accuracy", "train_seconds"
    }
    assert [e["epoch"] for e in written["epochs"]] == [1, 2]
    for epoch in written["epochs"]:
        assert set(epoch) == {
            "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"
        }
        assert np.isfinite(epoch["train_loss"]) and epoch["seconds"] > 0
    best = checkpoints.best_epoch(written["epochs"])
    assert written["best_epoch"] == best
    assert written["best_val_accuracy"] == written["epochs"][best - 1]["val_accuracy"]
    # two epochs on 62 x 6 images: above chance (1 of the 62 test images; 4 or more
    # happen by chance 2 % of the time), and a finite loss below chance's log(62)
    assert written["test_accuracy"] >= 4 / 62 and 0 < written["test_loss"] < np.log(62)
    assert json.loads((workdir / "config.json").read_text())["model"]["name"] == "tutorial"


def test_rerun_resumes_to_the_same_weights_as_one_run(trained_run, tmp_path):
    straight, expected = trained_run  # tiny_config(num_epochs=2) in one go
    resumed = tmp_path / "resumed"
    train.train_and_evaluate(tiny_config(num_epochs=1), str(resumed))
    result = train.train_and_evaluate(tiny_config(num_epochs=2), str(resumed))
    assert [e["val_accuracy"] for e in result["epochs"]] == [
        e["val_accuracy"] for e in expected["epochs"]
    ]
    assert result["test_accuracy"] == expected["test_accuracy"]
    assert result["test_loss"] == pytest.approx(expected["test_loss"], rel=1e-6)


def test_train_mix_adds_its_images_to_the_training_split_only(tmp_path):
    own = tmp_path / "own.npz"
    rng = np.random.default_rng(0)
    np.savez(own, images=rng.integers(0, 255, (62 * 5, 48, 48), dtype=np.uint8),
             labels=np.repeat(np.arange(62), 5))
    plain = train.load_splits(tiny_config(**{"data.source": f"npz:{own}"}))
    mixed = train.load_splits(tiny_config(**{"data.source": f"npz:{own}",
                                             "data.train_mix": "synthetic"}))
    synthetic = tiny_config().data.synthetic.num_images
    assert len(mixed.train) == len(plain.train) + synthetic
    np.testing.assert_array_equal(mixed.validation.images, plain.validation.images)
    np.testing.assert_array_equal(mixed.test.images, plain.test.images)
