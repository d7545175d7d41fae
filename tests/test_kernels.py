"""oneDNN kernels (impl='onednn'): same gradients and train step as the XLA paths,
deterministic, and a clean fallback to XLA when they cannot be loaded."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cpu_only, default_config, tiny_config

from charjax import kernels, layers, models, train


def needs_kernels(test):
    """The oneDNN kernels run inside XLA:CPU programs: a CPU backend and the kernels loaded."""
    return cpu_only(pytest.mark.skipif(not kernels.available(),
                                       reason=kernels.status().detail)(test))


needs_bf16_kernels = pytest.mark.skipif(
    not kernels.supports("bf16"),
    reason="this CPU's oneDNN has no bf16 convolution (AVX-512 needed)")


def _model(impl: str, precision: str = "float32"):
    block = kernels.select(impl, precision=precision).conv_block
    return models.create_model(default_config().model, precision, block)


def _images(batch: int = 8, seed: int = 0) -> jnp.ndarray:
    rng = np.random.default_rng(seed)
    images = (rng.random((batch, 48, 48, 1)) > 0.7).astype(np.float32) * rng.random()
    images[0] = rng.random((48, 48, 1))
    return jnp.asarray(images)


def _grads(impl: str, precision: str, params, x):
    model = _model(impl, precision)
    labels = jnp.arange(x.shape[0]) % 62

    def loss(p):
        logits = model.apply({"params": p}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    return jax.jit(jax.grad(loss))(params)


def _max_rel_err(a, b) -> dict[str, float]:
    out = {}
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a),
                            jax.tree_util.tree_leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out[jax.tree_util.keystr(path)] = float(np.abs(x - y).max() / np.abs(y).max())
    return out


def _rel_l2(a, b) -> dict[str, float]:
    out = {}
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a),
                            jax.tree_util.tree_leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out[jax.tree_util.keystr(path)] = float(np.linalg.norm(x - y) / np.linalg.norm(y))
    return out


@pytest.fixture(scope="module")
def params():
    return _model("flax").init({"params": jax.random.key(0)}, _images(1))["params"]


@needs_kernels
def test_float32_gradients_match_plain_flax(params):
    x = _images()
    errors = _max_rel_err(_grads("onednn", "float32", params, x),
                          _grads("flax", "float32", params, x))
    assert max(errors.values()) <= 1e-4, errors


@needs_kernels
@needs_bf16_kernels
def test_bf16_gradients_are_within_bf16_rounding_of_float32(params):
    """bf16 inputs with float32 sums keep about 3 significant digits per product and
    round the weight gradients to bf16: every bf16 path (plain Flax, XLA's, oneDNN's)
    lands 0.5-10 % from float32 here (L2 error relative to each leaf's norm). The bound:
    <= 0.1 for every leaf and no more than 10 % above XLA's bf16 path."""
    x = _images()
    ref = _grads("flax", "float32", params, x)
    onednn = _rel_l2(_grads("onednn", "bf16", params, x), ref)
    xla = _rel_l2(_grads("fast", "bf16", params, x), ref)
    assert max(onednn.values()) <= 0.1, onednn
    for leaf, err in onednn.items():
        assert err <= 1.1 * xla[leaf] + 1e-3, (leaf, err, xla[leaf])


def _reference_block(x, kernel, bias):
    """relu(max_pool(conv + bias)) with plain lax/Flax ops, in float32."""
    import flax.linen as nn

    x, kernel, bias = (a.astype(jnp.float32) for a in (x, kernel, bias))
    z = layers.conv_valid(x, kernel) + bias
    return nn.max_pool(nn.relu(z), window_shape=(2, 2), strides=(2, 2))


def _block_grads(block, x, kernel, bias):
    def loss(x, k, b):
        y = block(x, k, b).astype(jnp.float32)
        return jnp.sum(y * jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape)))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(x, kernel, bias)


# (batch, input size, channels in, out, kernel): the tutorial's two layers; a batch that
# leaves a remainder chunk; an odd conv output (the pool drops its last row and column);
# 8 output channels (the kernels' one-channel-at-a-time loops instead of AVX-512's 16)
BLOCKS = [(8, 48, 1, 32, 5), (8, 22, 32, 64, 3), (37, 22, 32, 64, 3), (5, 23, 32, 64, 3),
          (4, 12, 3, 8, 3)]


@needs_kernels
@pytest.mark.parametrize("batch,size,cin,cout,k", BLOCKS)
def test_fused_block_matches_plain_flax_in_float32(batch, size, cin, cout, k):
    rng = np.random.default_rng(batch + size + cin)
    x = jnp.asarray(rng.random((batch, size, size, cin)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, cin, cout)) * 0.3, jnp.float32)
    bias = jnp.asarray(rng.normal(size=cout) * 0.3, jnp.float32)
    got = jax.jit(layers.onednn_conv_relu_pool)(x, kernel, bias)
    want = _reference_block(x, kernel, bias)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    (_, g_got), (_, g_want) = (_block_grads(layers.onednn_conv_relu_pool, x, kernel, bias),
                               _block_grads(_reference_block, x, kernel, bias))
    for name, a, b in zip(("x", "kernel", "bias"), g_got, g_want, strict=True):
        err = float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())
        assert err <= 1e-4, (name, err)


@needs_kernels
@needs_bf16_kernels
@pytest.mark.parametrize("batch,size,cin,cout,k", BLOCKS[1:3])
def test_fused_block_in_bf16_is_within_bf16_rounding(batch, size, cin, cout, k):
    """bf16 inputs and output, float32 sums: each output within bf16's rounding of the
    float32 result (2^-8 relative, plus the inputs' own rounding), gradients within
    3 % (L2) of float32's."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((batch, size, size, cin)), jnp.bfloat16)
    kernel = jnp.asarray(rng.normal(size=(k, k, cin, cout)) * 0.3, jnp.bfloat16)
    bias = jnp.asarray(rng.normal(size=cout) * 0.3, jnp.bfloat16)
    got = np.asarray(jax.jit(layers.onednn_conv_relu_pool)(x, kernel, bias), np.float32)
    want = np.asarray(_reference_block(x, kernel, bias))
    assert got.dtype == np.float32 and np.abs(got - want).max() <= 2**-8 * np.abs(want).max()
    (_, g_got), (_, g_want) = (_block_grads(layers.onednn_conv_relu_pool, x, kernel, bias),
                               _block_grads(_reference_block, x, kernel, bias))
    for name, a, b in zip(("x", "kernel", "bias"), g_got, g_want, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.linalg.norm(a - b) <= 0.03 * np.linalg.norm(b), name


@needs_kernels
def test_fused_block_keeps_nan():
    x = jnp.ones((2, 10, 10, 16), jnp.float32).at[0, 3, 3, 0].set(jnp.nan)
    kernel = jnp.full((3, 3, 16, 16), 0.1, jnp.float32)
    y = np.asarray(jax.jit(layers.onednn_conv_relu_pool)(x, kernel, jnp.zeros(16)))
    assert np.isnan(y[0]).any() and not np.isnan(y[1]).any()


def _steps(impl: str, n: int = 3, seed: int = 0):
    # Adam 1e-3 with dropout on the tutorial's dense width, the setting these tolerances were
    # measured with
    config = tiny_config(learning_rate=1e-3, **{"model.tutorial.dropout": 0.5, "model.impl": impl,
                                                "model.tutorial.hidden": 128})
    state = train.create_train_state(config, jax.random.key(seed))
    rng = np.random.default_rng(seed)
    batch = {"image": jnp.asarray(rng.integers(0, 256, (32, 48, 48, 1), dtype=np.uint8)),
             "label": jnp.asarray(rng.integers(0, 62, 32).astype(np.int32))}
    step = jax.jit(train.train_step, compiler_options=layers.cpu_compiler_options() or None)
    for i in range(n):
        state, metrics = step(state, batch, jax.random.key(i))
    return state, metrics


@needs_kernels
def test_train_step_matches_the_xla_path_and_is_deterministic():
    onednn, m_onednn = _steps("onednn")
    xla, m_xla = _steps("fast")
    again, _ = _steps("onednn")
    np.testing.assert_allclose(m_onednn["loss"], m_xla["loss"], rtol=1e-5)
    # Adam moves each weight by about lr * sign(gradient) in its first steps, so where
    # a gradient is ~0 the convolutions' different rounding can move a weight by up to
    # lr (1e-3, against weights of ~0.05): hence 1e-3 here, 1e-4 on the gradients above.
    errors = _max_rel_err(onednn.params, xla.params)
    assert max(errors.values()) <= 1e-3, errors
    assert np.median(list(errors.values())) <= 1e-5, errors
    for a, b in zip(jax.tree_util.tree_leaves(onednn.params),
                    jax.tree_util.tree_leaves(again.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture
def no_kernels(monkeypatch):
    """Loads charjax.kernels afresh under the patched environment; the process's own status
    comes back afterwards (a process registers the kernels once: a second load would fail)."""
    monkeypatch.setattr(kernels, "status", functools.cache(kernels._load))
    return monkeypatch


@pytest.mark.parametrize("how", ["env", "compiler", "load"])
def test_auto_falls_back_to_xla_and_says_why(no_kernels, how):
    if how == "env":
        no_kernels.setenv(kernels.DISABLE_ENV, "off")
    elif how == "compiler":
        no_kernels.setenv("CXX", "no-such-compiler-here")
    else:
        no_kernels.setattr(kernels, "_onednn_prefix", lambda: kernels.pathlib.Path("/nowhere"))
        no_kernels.setattr(kernels.shutil, "which", lambda _: "/bin/true")
        no_kernels.setattr(kernels, "_build", lambda *_: kernels.pathlib.Path("/nowhere/x.so"))
        no_kernels.setattr(kernels, "_registered", None)  # as in a fresh process
    assert kernels.select("auto", backend="cpu").impl == "fast"
    status = kernels.status()
    assert not status.available
    line = kernels.select("auto", backend="cpu").description
    assert "\n" not in line and "backend cpu" in line and status.detail in line
    with pytest.raises(RuntimeError, match="impl='onednn'"):
        kernels.select("onednn", backend="cpu")
    x = _images(2)
    params = _model("auto").init({"params": jax.random.key(0)}, x)["params"]
    assert _model("auto").apply({"params": params}, x).shape == (2, 62)


def test_auto_on_an_accelerator_is_plain_flax(monkeypatch):
    monkeypatch.setattr(kernels, "status", lambda: pytest.fail("kernels consulted on gpu"))
    choice = kernels.select("auto", backend="gpu")
    assert choice.impl == "flax" and choice.conv_block is None


def test_auto_falls_back_to_xla_where_onednn_lacks_the_precision(monkeypatch):
    """A CPU whose oneDNN has no bf16 convolution (no AVX-512) trains bf16 on XLA's
    kernels under impl='auto', and an explicit impl='onednn' says why it can't."""
    monkeypatch.setattr(kernels, "available", lambda: True)
    monkeypatch.setattr(kernels, "supports", lambda dtype: dtype == "float32")
    assert kernels.select("auto", "cpu", "float32").conv_block is layers.onednn_conv_relu_pool
    assert kernels.select("auto", "cpu", "bf16").conv_block is layers.conv_relu_pool
    with pytest.raises(RuntimeError, match="no bf16 convolution"):
        kernels.select("onednn", "cpu", "bf16")
    assert "no bf16 convolution" in kernels.select("auto", "cpu", "bf16").description


@needs_kernels
def test_the_library_ships_only_the_targets_charjax_calls():
    # The unfused convolutions are built for benchmarks/fused_blocks.py alone (a -D flag).
    lib = kernels._registered
    assert all(hasattr(lib, symbol) for symbol in kernels.TARGETS.values())
    assert not any(hasattr(lib, s) for s in
                   ("CharjaxConvForward", "CharjaxConvBackwardData", "CharjaxConvBackwardWeights"))
