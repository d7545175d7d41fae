"""The fused oneDNN conv-pool block against the unfused one, in the whole train step.

Both variants are compiled in one process and timed in interleaved rounds, so the
machine's load hits them alike; the figures are process CPU ms and wall ms per step
(medians). "unfused": oneDNN convolutions with XLA's pooling, bias and ReLU (the
previous design); "fused": `charjax.layers.onednn_conv_relu_pool`.

    python benchmarks/fused_blocks.py --precision all --batch-size 128 --one-core
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


UNFUSED_TARGETS = {
    "charjax_onednn_conv_fwd": "CharjaxConvForward",
    "charjax_onednn_conv_bwd_data": "CharjaxConvBackwardData",
    "charjax_onednn_conv_bwd_weights": "CharjaxConvBackwardWeights",
}


def unfused_block():
    """The previous design, for comparison: oneDNN's convolutions (forward, input and
    kernel gradients as three FFI calls, from a build of charjax's kernels with the extra
    targets) and XLA's pooling, bias and ReLU; the 1-channel layer's forward stays XLA's."""
    import ctypes
    import shutil

    import jax
    import jax.numpy as jnp

    from charjax import kernels, layers

    lib = ctypes.cdll.LoadLibrary(str(kernels._build(
        kernels._onednn_prefix(), shutil.which(os.environ.get("CXX", "g++")),
        ("-DCHARJAX_UNFUSED_TARGETS",))))
    lib.charjax_onednn_set_threads(kernels.threads_per_call())
    for name, symbol in UNFUSED_TARGETS.items():
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")

    def conv(x, kernel):
        (b, h, w, _), (kh, kw, _, o) = x.shape, kernel.shape
        out = jax.ShapeDtypeStruct((b, h - kh + 1, w - kw + 1, o), jnp.float32)
        return jax.ffi.ffi_call("charjax_onednn_conv_fwd", out)(x, kernel)

    def kernel_grad(x, gz, kernel_shape):
        out = jax.ShapeDtypeStruct(kernel_shape, jnp.float32)
        return jax.ffi.ffi_call("charjax_onednn_conv_bwd_weights", out)(x, gz.astype(x.dtype))

    def input_grad(gz, kernel, x_shape):
        out = jax.ShapeDtypeStruct(x_shape, kernel.dtype)
        return jax.ffi.ffi_call("charjax_onednn_conv_bwd_data", out)(
            gz.astype(kernel.dtype), kernel)

    def forward(x, kernel, bias):
        if x.shape[-1] == 1:  # XLA's taps in cache-sized chunks are faster here
            return layers._block_forward(x, kernel, bias)
        return layers._pool_bias_relu(conv(x, kernel), bias, x.dtype)

    return layers._make_block(forward, kernel_grad, input_grad, "the unfused oneDNN block")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("float32", "bf16", "all"), default="all")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--one-core", action="store_true",
                        help="pin to one core, one compute thread (set before jax loads)")
    args = parser.parse_args()
    if args.one_core:
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()

    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, HERE)
    from step_time import random_batch

    from charjax import config_files, kernels, layers, train

    if not kernels.available():
        raise SystemExit(f"the oneDNN kernels are unavailable: {kernels.status().detail}")
    print(kernels.status().detail, f"; load average {os.getloadavg()[0]:.1f}")
    variants = {"unfused": unfused_block(),
                "fused": layers.onednn_conv_relu_pool}
    images, labels = random_batch(args.batch_size)
    batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
    precisions = ("float32", "bf16") if args.precision == "all" else (args.precision,)
    for precision in precisions:
        config = config_files.load(os.path.join(os.path.dirname(HERE), "configs", "default.py"))
        with config.unlocked():
            config.precision = precision
            config.model.impl = "onednn"
            config.model.tutorial.hidden = 128  # the tutorial's network (RESULTS.md's tables)
        steps = {}
        try:
            for name, block in variants.items():  # the model looks the block up when traced
                layers.onednn_conv_relu_pool = block
                state = train.create_train_state(config, jax.random.key(0))
                step = jax.jit(train.train_step,
                               compiler_options=layers.cpu_compiler_options() or None)
                jax.block_until_ready(step(state, batch, jax.random.key(1)))
                steps[name] = (step, state)
        finally:
            layers.onednn_conv_relu_pool = variants["fused"]
        cpu = {name: [] for name in variants}
        wall = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (step, state) in steps.items():
                for i in range(3):
                    jax.block_until_ready(step(state, batch, jax.random.key(i)))
                for i in range(args.steps):
                    t, c = time.perf_counter(), time.process_time()
                    jax.block_until_ready(step(state, batch, jax.random.key(i)))
                    wall[name].append(time.perf_counter() - t)
                    cpu[name].append(time.process_time() - c)
        line = ", ".join(f"{name} cpu {np.median(cpu[name]) * 1e3:.1f} ms wall "
                         f"{np.median(wall[name]) * 1e3:.1f} ms" for name in variants)
        print(f"{precision} B={args.batch_size}{' one core' if args.one_core else ''}: {line}"
              f"; fused/unfused cpu {np.median(cpu['fused']) / np.median(cpu['unfused']):.2f}x"
              f"; load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
