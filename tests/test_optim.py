"""Optimizer recipe knobs: schedules, AdamW, clipping, label smoothing, EMA."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import jitted_train_step, tiny_config

from charjax import optim, run_folder, train
from charjax.errors import CheckpointError


def _config(**kw):
    config = tiny_config(num_epochs=10, learning_rate=1e-2)
    for k, v in kw.items():
        config.optimizer[k] = v
    return config


def test_constant_schedule_is_the_tutorials_adam():
    schedule = optim.learning_rate_schedule(_config(), steps_per_epoch=5)
    assert [float(schedule(s)) for s in (0, 10, 49)] == pytest.approx([1e-2] * 3)


def test_cosine_warms_up_then_decays():
    schedule = optim.learning_rate_schedule(
        _config(schedule="cosine", warmup_epochs=2.0), steps_per_epoch=5
    )
    values = [float(schedule(s)) for s in range(50)]
    assert values[0] == 0.0
    assert max(values) == pytest.approx(1e-2) and int(np.argmax(values)) == 10
    assert values[-1] < 0.05 * 1e-2
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))


def test_onecycle_peaks_inside_the_run():
    schedule = optim.learning_rate_schedule(_config(schedule="onecycle"), steps_per_epoch=5)
    values = [float(schedule(s)) for s in range(50)]
    assert 0 < int(np.argmax(values)) < 49 and values[0] < max(values) and values[-1] < values[0]


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="schedule 'zigzag'"):
        optim.learning_rate_schedule(_config(schedule="zigzag"), 5)
    with pytest.raises(ValueError, match="optimizer.name 'sgdx'"):
        optim.make_optimizer(_config(name="sgdx"))


def test_adamw_decays_weights_that_have_no_gradient():
    params = {"w": jnp.ones(3)}
    for name, expect_change in (("adam", False), ("adamw", True)):
        tx = optim.make_optimizer(_config(name=name, weight_decay=0.1))
        updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
        new = optax.apply_updates(params, updates)
        assert bool(jnp.any(new["w"] != 1.0)) == expect_change, name


def test_gradient_clipping_clips_before_adam():
    params = {"w": jnp.zeros(4)}
    grads = [{"w": jnp.full(4, 1e6)}, {"w": jnp.array([1.0, 2.0, 3.0, 4.0]) * 1e3}]
    plain = optim.make_optimizer(_config(name="adamw", weight_decay=0.0))
    clipped = optim.make_optimizer(_config(name="adamw", weight_decay=0.0, grad_clip_norm=1.0))
    clip = optax.clip_by_global_norm(1.0)

    def run(tx, gs):
        state = tx.init(params)
        for g in gs:
            update, state = tx.update(g, state, params)
        return update["w"]

    by_hand = [clip.update(g, clip.init(params))[0] for g in grads]
    np.testing.assert_allclose(run(clipped, grads), run(plain, by_hand), rtol=1e-5)
    assert not np.allclose(run(clipped, grads), run(plain, grads), rtol=1e-3)


def _batch():
    rng = np.random.default_rng(0)
    return {"image": jnp.asarray(rng.integers(0, 256, (16, 48, 48, 1), dtype=np.uint8)),
            "label": jnp.asarray(rng.integers(0, 62, 16, dtype=np.int32))}


def test_label_smoothing_changes_the_update_not_the_reported_loss():
    config = tiny_config()
    state = train.create_train_state(config, jax.random.key(0))
    batch, rng = _batch(), jax.random.key(1)
    plain, m_plain = jitted_train_step(state, batch, rng)
    smooth, m_smooth = jitted_train_step(state, batch, rng, label_smoothing=0.2)
    assert float(m_plain["loss"]) == pytest.approx(float(m_smooth["loss"]), rel=1e-6)
    leaves = zip(jax.tree_util.tree_leaves(plain.params),
                 jax.tree_util.tree_leaves(smooth.params), strict=True)
    assert any(not np.array_equal(a, b) for a, b in leaves)


def test_ema_tracks_the_weights_and_is_used_for_evaluation():
    config = tiny_config(ema_decay=0.9)
    state = train.create_train_state(config, jax.random.key(0))
    assert state.ema_params is not None
    new, _ = jitted_train_step(state, _batch(), jax.random.key(1), ema_decay=0.9)
    for e, p0, p1 in zip(jax.tree_util.tree_leaves(new.ema_params),
                         jax.tree_util.tree_leaves(state.params),
                         jax.tree_util.tree_leaves(new.params), strict=True):
        np.testing.assert_allclose(e, 0.9 * p0 + 0.1 * p1, rtol=1e-5, atol=1e-7)
    assert new.eval_params() is new.ema_params
    assert train.create_train_state(tiny_config(), jax.random.key(0)).ema_params is None


def test_resume_with_another_length_is_refused_under_a_schedule():
    stored = tiny_config(**{"optimizer.schedule": "cosine"})
    current = tiny_config(num_epochs=5, **{"optimizer.schedule": "cosine"})
    with pytest.raises(CheckpointError, match="num_epochs: 1 -> 5"):
        run_folder.check_resume_config("w", stored, current)
    run_folder.check_resume_config("w", tiny_config(), tiny_config(num_epochs=5))
