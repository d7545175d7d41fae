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
    variants = {"unfused": layers.onednn_unfused_conv_relu_pool,
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
