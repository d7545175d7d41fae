import jax
import jax.numpy as jnp
import pytest
from conftest import default_config

from charjax import models


def _count(params) -> int:
    return sum(x.size for x in jax.tree_util.tree_leaves(params))


def _config(name="tutorial", **kw):
    """The default config's model block naming `name`, with `kw` set on its own block."""
    model = default_config().model
    model.name = name
    for key, value in kw.items():
        model[models.canonical_name(name)][key] = value
    return model


@pytest.mark.parametrize("name", ["tutorial", "1"])
def test_tutorial_model_has_the_tutorials_parameter_count(name):
    model = models.create_model(_config(name, hidden=128))  # the tutorial's width
    variables = model.init(jax.random.key(0), jnp.zeros((1, 48, 48, 1)))
    assert _count(variables["params"]) == 846_654
    logits = model.apply(variables, jnp.zeros((3, 48, 48, 1)))
    assert logits.shape == (3, 62) and logits.dtype == jnp.float32


def test_hidden_width_is_a_config_field():
    model = models.create_model(_config(hidden=64))
    variables = model.init(jax.random.key(0), jnp.zeros((1, 48, 48, 1)))
    # conv1 832 + conv2 18,496 + dense 6400*64+64 + head 64*62+62
    assert _count(variables["params"]) == 832 + 18_496 + 6400 * 64 + 64 + 64 * 62 + 62


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*tutorial"):
        models.create_model(_config("resnet9000"))


def test_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        models.create_model(_config(), precision="fp8")


@pytest.mark.parametrize(
    "name,expected",
    [
        # conv1 25*32 + bn 64, conv2 800*64 + bn 128, dense 5184*1024 + bn 2048, head 1024*62+62
        ("tutorial_bn", 800 + 64 + 51_200 + 128 + 5184 * 1024 + 2048 + 1024 * 62 + 62),
        ("compact_vgg", 966_046),
    ],
)
def test_batch_norm_models(name, expected):
    model = models.create_model(_config(name))
    variables = model.init(jax.random.key(0), jnp.zeros((1, 48, 48, 1)))
    assert _count(variables["params"]) == expected
    # every BatchNorm layer keeps a running mean and variance per feature it scales
    scales = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
              if path[-1].key == "scale"]
    assert scales and _count(variables["batch_stats"]) == 2 * sum(s.size for s in scales)


def test_batch_norm_statistics_train_and_checkpoint(tmp_path):
    from conftest import jitted_train_step, tiny_config

    from charjax import checkpoints, train

    config = tiny_config(**{"model.name": "tutorial_bn", "model.tutorial_bn.hidden": 16})
    state = train.create_train_state(config, jax.random.key(0))
    batch = {"image": jnp.full((8, 48, 48, 1), 200, jnp.uint8).at[:, :10].set(0),
             "label": jnp.arange(8, dtype=jnp.int32)}
    new, _ = jitted_train_step(state, batch, jax.random.key(1))
    before = jax.tree_util.tree_leaves(state.batch_stats)
    after = jax.tree_util.tree_leaves(new.batch_stats)
    assert any(not jnp.array_equal(a, b) for a, b in zip(before, after, strict=True))
    mngr = checkpoints.manager(tmp_path)
    checkpoints.save(mngr, 1, new, {}, [], {"val_accuracy": 0.5})
    mngr.wait_until_finished()
    restored, _, _ = checkpoints.restore(mngr, 1, state)
    for a, b in zip(jax.tree_util.tree_leaves(restored.batch_stats), after, strict=True):
        assert jnp.array_equal(a, b)
    mngr.close()
