import jax
import jax.numpy as jnp
import ml_collections
import pytest

from charjax import models


def _count(params) -> int:
    return sum(x.size for x in jax.tree_util.tree_leaves(params))


def _config(name="tutorial", **kw):
    return ml_collections.ConfigDict({"name": name, "hidden": 128, "dropout": 0.5, **kw})


@pytest.mark.parametrize("name", ["tutorial", "1"])
def test_tutorial_model_has_the_tutorials_parameter_count(name):
    model = models.create_model(_config(name))
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
