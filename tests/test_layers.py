"""The fast path (impl='fast') is the plain Flax network in other clothes: same params,
same outputs, same gradients, including the max-pool's tie-breaking."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import default_config

from charjax import kernels, layers, models


def _model(impl: str, precision: str = "float32") -> nn.Module:
    block = kernels.select(impl, precision=precision).conv_block
    return models.create_model(default_config().model, precision, block)


def _images(batch: int = 6, seed: int = 0) -> jnp.ndarray:
    """Pen-like strokes on a blank background: blank regions make pooling ties."""
    rng = np.random.default_rng(seed)
    images = np.zeros((batch, 48, 48, 1), np.float32)
    for img in images:
        r, c = rng.integers(8, 30, 2)
        img[r:r + 14, c:c + 3, 0] = rng.random((14, 3))
        img[r + 5:r + 8, c:c + 12, 0] = 1.0
    images[0] = rng.random((48, 48, 1))  # and one image with no ties at all
    return jnp.asarray(images)


@pytest.fixture(scope="module")
def params():
    return _model("flax").init({"params": jax.random.key(0)}, _images(1))["params"]


def _rel_err(a: jnp.ndarray, b: jnp.ndarray) -> float:
    return float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-30))


def test_parameter_trees_are_identical():
    x = _images(1)
    fast = _model("fast").init({"params": jax.random.key(3)}, x)["params"]
    flax_ = _model("flax").init({"params": jax.random.key(3)}, x)["params"]
    assert jax.tree_util.tree_structure(fast) == jax.tree_util.tree_structure(flax_)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(fast),
                            jax.tree_util.tree_leaves(flax_), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype == jnp.float32, path
        np.testing.assert_array_equal(a, b, err_msg=str(path))
    assert fast["conv1"]["kernel"].shape == (5, 5, 1, 32)
    assert fast["conv2"]["kernel"].shape == (3, 3, 32, 64)
    hidden = default_config().model.tutorial.hidden
    assert sum(v.size for v in jax.tree_util.tree_leaves(fast)) == (
        832 + 18_496 + 6400 * hidden + hidden + hidden * 62 + 62
    )


@pytest.mark.usefixtures("highest_precision")
def test_forward_matches_flax(params):
    x = _images()
    fast = _model("fast").apply({"params": params}, x)
    ref = _model("flax").apply({"params": params}, x)
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("highest_precision")
@pytest.mark.parametrize("jit_options", [False, True])
def test_gradients_match_flax(params, jit_options):
    x, labels = _images(), jnp.arange(6) * 7 % 62

    def grads(impl):
        model = _model(impl)

        def loss(p):
            logits = model.apply({"params": p}, x, train=True,
                                 rngs={"dropout": jax.random.key(5)})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        opts = layers.cpu_compiler_options() if jit_options else None
        return jax.jit(jax.grad(loss), compiler_options=opts or None)(params)

    fast, ref = grads("fast"), grads("flax")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(fast),
                            jax.tree_util.tree_leaves(ref), strict=True):
        assert _rel_err(a, b) <= 1e-4, (path, _rel_err(a, b))


@pytest.mark.usefixtures("highest_precision")
def test_chunked_first_layer_matches_flax(params):
    """Batches that split into chunks run the first layer in a loop: same numbers."""
    x = jnp.concatenate([_images(6, seed) for seed in range(6)])[:32]
    labels = jnp.arange(32) % 62

    def loss(impl):
        model = _model(impl)

        def fn(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        return jax.jit(jax.value_and_grad(fn))(params)

    (fast_loss, fast), (ref_loss, ref) = loss("fast"), loss("flax")
    np.testing.assert_allclose(fast_loss, ref_loss, rtol=1e-6)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(fast),
                            jax.tree_util.tree_leaves(ref), strict=True):
        assert _rel_err(a, b) <= 1e-4, (path, _rel_err(a, b))


def _pool_and_first(x):
    """The pool of `layers.conv_relu_pool` alone (a bias of 100 keeps the ReLU open) and
    each window's first maximum, where its backward pass sends the gradient."""
    out, first = layers._pool_bias_relu(x, jnp.full(x.shape[-1:], 100.0), jnp.float32)
    return out - 100.0, first


@jax.custom_vjp
def _max_pool(x):
    return _pool_and_first(x)[0]


_max_pool.defvjp(_pool_and_first, lambda first, g: (layers._unpool(g, first),))


def test_max_pool_gradient_breaks_ties_like_select_and_scatter():
    # Windows with 1, 2, 3 and 4 tied maxima, in every position.
    x = jnp.array([[[3, 3, 0, 5], [3, 3, 5, 5]], [[1, 2, 7, 7], [2, 0, 1, 7]]],
                  jnp.float32).reshape(1, 4, 4, 1)
    x = jnp.concatenate([x, -x, jnp.zeros_like(x)], axis=-1)
    g = jnp.arange(1.0, 13.0).reshape(1, 2, 2, 3)

    def pooled_dot(pool):
        return lambda v: jnp.sum(pool(v) * g)

    ref = jax.grad(pooled_dot(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2))))(x)
    fast = jax.grad(pooled_dot(_max_pool))(x)
    np.testing.assert_array_equal(_max_pool(x), nn.max_pool(x, (2, 2), (2, 2)))
    np.testing.assert_array_equal(fast, ref)


def test_bf16_forward_close_to_float32(params):
    x = _images()
    ref = _model("fast").apply({"params": params}, x)
    for impl in ("fast", "flax"):
        logits = _model(impl, "bf16").apply({"params": params}, x)
        assert logits.dtype == jnp.float32
        assert _rel_err(logits, ref) < 3e-2, impl
        assert (jnp.argmax(logits, -1) == jnp.argmax(ref, -1)).mean() >= 5 / 6


def test_bf16_keeps_float32_master_weights():
    p = _model("fast", "bf16").init({"params": jax.random.key(0)}, _images(1))["params"]
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(p)} == {jnp.dtype(jnp.float32)}


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="impl"):
        _model("cudnn").init({"params": jax.random.key(0)}, _images(1))


def test_compiler_options_only_on_cpu():
    assert layers.cpu_compiler_options("gpu") == {}
    assert "xla_cpu_experimental_ynn_fusion_type" in layers.cpu_compiler_options("cpu")
