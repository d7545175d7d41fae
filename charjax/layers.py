"""Fast CPU layers for the tutorial network: same parameters, same maths, quicker XLA.

XLA:CPU (jaxlib 0.10.2) loses most of a plain Flax train step in three places: the
max-pool gradient (`select_and_scatter`), convolutions handed to YNNPACK (whose weight
gradients are 4-8x slower than Eigen's here), and pooling/ReLU recomputed inside the
batch-minor transposes that Eigen's weight gradients need. This module keeps the
parameter tree of `nn.Conv` (`kernel` [kh, kw, in, out], `bias` [out]), so checkpoints
move freely between `impl='fast'` and `impl='flax'`, and changes only the layout:

* conv + 2x2 max-pool + bias + ReLU as one block with a hand-written gradient; the
  pool's gradient goes to the first maximum of each window (row-major), exactly as
  `select_and_scatter` routes it, from an int8 index saved in the forward pass;
* bias and ReLU after the pool (same numbers, a quarter of the elements);
* the pooled max via `reduce_window`, which XLA:CPU cannot fuse into its consumers,
  so it is written once instead of being recomputed in every transposed copy;
* a 1-channel convolution (the first layer) as 25 shifted multiply-adds;
* `cpu_compiler_options()`: per-jit XLA options that send convolutions and dots to
  Eigen instead of YNNPACK.

benchmarks/RESULTS.md has the measurements behind each choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def cpu_compiler_options(backend: str | None = None) -> dict[str, str]:
    """XLA options for `jax.jit(..., compiler_options=...)` of a train step on CPU.

    An empty YNNPACK fusion list makes XLA:CPU run convolutions and dots with Eigen,
    whose convolution gradients are several times faster here than YNNPACK's. The
    options apply to that one jitted function only (no process-wide XLA_FLAGS), and
    on other backends this returns {}.
    """
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return {}
    return {"xla_cpu_experimental_ynn_fusion_type": ""}


def _corners(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The four positions of every 2x2 window, row-major, each [B, H/2, W/2, C]."""
    return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


def _unpool(g: jax.Array, first: jax.Array) -> jax.Array:
    """Scatters g [B, H/2, W/2, C] to the recorded window positions of a [B, H, W, C] array."""
    bsz, h2, w2, c = g.shape
    pos = (2 * lax.broadcasted_iota(jnp.int8, (1, 1, 2, 1, 2, 1), 2)
           + lax.broadcasted_iota(jnp.int8, (1, 1, 2, 1, 2, 1), 4))
    gx = jnp.where(pos == first[:, :, None, :, None, :], g[:, :, None, :, None, :],
                   jnp.zeros((), g.dtype))
    return gx.reshape(bsz, 2 * h2, 2 * w2, c)


def conv_valid(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-1 VALID convolution, NHWC x HWIO, without bias (the maths of nn.Conv)."""
    return lax.conv_general_dilated(
        x, kernel, (1, 1), "VALID", dimension_numbers=_DIMENSION_NUMBERS
    )


def _conv_single_channel(x: jax.Array, kernel: jax.Array, acc: jnp.dtype) -> jax.Array:
    """VALID convolution of a 1-channel input as kh*kw shifted multiply-adds.

    With one input channel a GEMM or Eigen convolution has a tiny contraction
    (25 for 5x5) and runs at a fraction of peak; XLA's elementwise loop does better.
    """
    kh, kw = kernel.shape[:2]
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    # Accumulates in `acc` (float32 for bf16 inputs), as a convolution would: XLA:CPU
    # would otherwise round every partial sum to bf16 (and run 5x slower).
    xs, ks = x.astype(acc), kernel.astype(acc)
    out = None
    for i in range(kh):
        for j in range(kw):
            term = xs[:, i:i + ho, j:j + wo, :] * ks[i, j, 0]
            out = term if out is None else out + term
    return out


def _kernel_grad(x: jax.Array, gz: jax.Array, kernel_shape: tuple[int, ...]) -> jax.Array:
    """d(loss)/d(kernel) of conv_valid(x, kernel) given gz = d(loss)/d(output)."""
    zeros = jnp.zeros(kernel_shape, x.dtype)
    return jax.vjp(lambda k: conv_valid(x, k), zeros)[1](gz)[0]


def _input_grad(gz: jax.Array, kernel: jax.Array, x_shape: tuple[int, ...]) -> jax.Array:
    """d(loss)/d(x) of conv_valid(x, kernel): XLA's padded, flipped-kernel convolution."""
    zeros = jnp.zeros(x_shape, gz.dtype)
    return jax.vjp(lambda x: conv_valid(x, kernel), zeros)[1](gz)[0]


_CHUNK = 16


def _in_chunks(fn, *arrays: jax.Array, chunk: int = _CHUNK):
    """fn(*arrays) computed on batch slices of `chunk` images in a loop, outputs
    concatenated.

    For elementwise work (the first layer's taps, pooling) a chunk's intermediates stay
    in L2/L3 instead of making 30 MB round trips to memory: 3x less time at batch 128.
    (Convolutions and dots must stay out of such loops: XLA:CPU runs them 30x slower
    inside a while loop.)
    """
    b = arrays[0].shape[0]
    if b <= chunk or b % chunk:
        return fn(*arrays)
    split = [a.reshape(b // chunk, chunk, *a.shape[1:]) for a in arrays]
    outs = lax.map(lambda xs: fn(*xs), split)
    return jax.tree_util.tree_map(lambda o: o.reshape(b, *o.shape[2:]), outs)


def _block_forward(
    x: jax.Array, kernel: jax.Array, bias: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(relu(pool(conv) + bias), first-maximum index); the 1-channel layer in chunks."""
    if x.shape[-1] == 1:
        return _in_chunks(lambda xc: _block_forward_unchunked(xc, kernel, bias), x)
    return _block_forward_unchunked(x, kernel, bias)


def _block_forward_unchunked(
    x: jax.Array, kernel: jax.Array, bias: jax.Array
) -> tuple[jax.Array, jax.Array]:
    # bf16 inputs: XLA:CPU convolves in float32 anyway, so keep its float32 result
    # through the pool and round once, after bias and ReLU.
    acc = jnp.promote_types(x.dtype, jnp.float32)
    if x.shape[-1] == 1:
        z = _conv_single_channel(x, kernel, acc)
    else:
        z = lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=_DIMENSION_NUMBERS,
                                     preferred_element_type=acc)
    return _pool_bias_relu(z, bias, x.dtype)


def _pool_bias_relu(z: jax.Array, bias: jax.Array, dtype: jnp.dtype):
    """(relu(pool(z) + bias) in `dtype`, first-maximum index) of a float32-or-wider z."""
    # reduce_window is not loop-fusible on XLA:CPU, so the pooled tensor is written
    # once instead of being recomputed inside every (transposing) consumer.
    y = lax.reduce_window(z, jnp.array(-jnp.inf, z.dtype), lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                          "VALID")
    a, b, c, _ = _corners(z)
    first = jnp.where(a == y, 0, jnp.where(b == y, 1, jnp.where(c == y, 2, 3))).astype(jnp.int8)
    out = jnp.maximum(y + bias.astype(z.dtype), jnp.zeros((), z.dtype)).astype(dtype)
    return out, first


def _block_backward(kernel_grad, input_grad):
    """The block's VJP given the two convolution gradients (XLA's or oneDNN's)."""

    def bwd(res: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """ReLU mask, bias sum, unpool by the saved index, then input/kernel grads."""
        x, kernel, first, out = res
        g = jnp.where(out > 0, g, jnp.zeros((), g.dtype))
        d_bias = jnp.sum(g, axis=(0, 1, 2), dtype=jnp.promote_types(g.dtype, jnp.float32))
        d_bias = d_bias.astype(kernel.dtype)
        gz = _unpool(g, first)
        d_kernel = kernel_grad(x, gz, kernel.shape).astype(kernel.dtype)
        d_x = input_grad(gz, kernel, x.shape)  # dead code for the first layer: XLA drops it
        return d_x, d_kernel, d_bias

    return bwd


def _make_block(forward, kernel_grad, input_grad, doc: str):
    @jax.custom_vjp
    def block(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
        return forward(x, kernel, bias)[0]

    def fwd(x: jax.Array, kernel: jax.Array, bias: jax.Array):
        out, first = forward(x, kernel, bias)
        return out, (x, kernel, first, out)

    block.defvjp(fwd, _block_backward(kernel_grad, input_grad))
    block.__doc__ = doc
    return block


conv_relu_pool = _make_block(
    _block_forward, _kernel_grad, _input_grad,
    """relu(max_pool(conv_valid(x, kernel) + bias)), written as relu(pool(conv) + bias).

    max(a + b) = max(a) + b and relu is monotone, so the two orders agree bit for bit;
    this one adds and clips a quarter of the elements. The backward pass is written by
    hand: first-maximum routing for the pool (as select_and_scatter), Eigen convolutions
    for the gradients.
    """,
)

def _pooled_shape(x: jax.Array, kernel: jax.Array) -> tuple[int, int, int, int]:
    (b, h, w, _), (kh, kw, _, o) = x.shape, kernel.shape
    return b, (h - kh + 1) // 2, (w - kw + 1) // 2, o


def _fused_forward(x: jax.Array, kernel: jax.Array, bias: jax.Array):
    """(relu(pool(conv) + bias) in x's dtype, window index: 0-3 first maximum, 4 clipped)."""
    shape = _pooled_shape(x, kernel)
    out = (jax.ShapeDtypeStruct(shape, x.dtype), jax.ShapeDtypeStruct(shape, jnp.int8))
    return jax.ffi.ffi_call("charjax_onednn_block_fwd", out)(x, kernel.astype(x.dtype), bias)


@jax.custom_vjp
def onednn_conv_relu_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """conv_relu_pool as one oneDNN FFI call forward and one backward.

    The forward call convolves cache-sized batch chunks and pools each at once (bias,
    ReLU, first-maximum index), so the full-size convolution output never reaches
    memory; the backward call scatters the gradient through the index chunk by chunk
    and runs oneDNN's input and kernel gradients on each chunk. bf16 inputs are
    multiplied in bf16 and summed in float32. Same numbers as conv_relu_pool up to the
    order of float32 sums.
    """
    return _fused_forward(x, kernel, bias)[0]


def _fused_fwd(x: jax.Array, kernel: jax.Array, bias: jax.Array):
    out, index = _fused_forward(x, kernel, bias)
    return out, (x, kernel, index)


def _fused_bwd(res: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    x, kernel, index = res
    g = g.astype(x.dtype)
    grads = (jax.ShapeDtypeStruct(kernel.shape, jnp.float32),
             jax.ShapeDtypeStruct(kernel.shape[-1:], jnp.float32))
    if x.shape[-1] == 1:
        # A 1-channel input is the image: its gradient is rarely wanted, so the fused
        # call skips it and XLA's (dropped as dead code when unused) stands in.
        d_kernel, d_bias = jax.ffi.ffi_call("charjax_onednn_block_bwd_weights", grads)(
            x, index, g)
        d_x = _input_grad(_unpool(g, index), kernel.astype(x.dtype), x.shape)
    else:
        d_x, d_kernel, d_bias = jax.ffi.ffi_call(
            "charjax_onednn_block_bwd", (jax.ShapeDtypeStruct(x.shape, x.dtype), *grads))(
            x, kernel.astype(x.dtype), index, g)
    return d_x, d_kernel.astype(kernel.dtype), d_bias.astype(kernel.dtype)


onednn_conv_relu_pool.defvjp(_fused_fwd, _fused_bwd)


class ConvReluPool(nn.Module):
    """`max_pool(relu(Conv(features, kernel_size, VALID)(x)), 2, 2)` with nn.Conv's params.

    Parameters are created in `param_dtype` (float32 master weights) under nn.Conv's
    names, shapes and initialisers, and cast to `dtype` for the compute. `block`:
    `conv_relu_pool` (XLA's convolutions) or `onednn_conv_relu_pool` (the fused oneDNN
    block of charjax.kernels), same parameters and maths.
    """

    features: int
    kernel_size: Sequence[int]
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
    block: Callable = conv_relu_pool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        kernel = self.param(
            "kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), self.param_dtype
        )
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return self.block(x, kernel, bias)
