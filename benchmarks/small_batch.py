"""The CPU train step at small batches: where its time goes, and what threads buy.

One process, one jitted step (step_time.py's charjax step: the trainer's `train_step`,
model.impl='auto'), timed in alternating blocks under each setting of the oneDNN
blocks' small-batch threshold (below it a block runs on one thread, from it on the team,
each thread on its own chunks of the batch), so a neighbour's load hits every setting
alike; the table shows each setting's median over all its blocks. `--parts` also times
the pieces of the step alone: the two conv blocks forward and backward (the rest, dense
layers, loss and Adam, is the difference), and a jitted call of the step's arguments
that does nothing (dispatch).

    python benchmarks/small_batch.py --batch-size 32 --thresholds 64,16 --rounds 8 --parts
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.modules.setdefault("torch", None)  # see step_time.keep_torch_out


def _times_ms(fn, steps: int) -> list[tuple[float, float]]:
    """(wall, process CPU) milliseconds of each call."""
    out = []
    for _ in range(steps):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        out.append(((time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3))
    return out


def conv_blocks(batch_size: int, precision: str):
    """Both conv-pool blocks of the tutorial network, forward and backward, jitted alone."""
    import jax
    import jax.numpy as jnp

    from charjax import layers

    rng = np.random.default_rng(0)
    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    x = jnp.asarray(rng.random((batch_size, 48, 48, 1), np.float32), dtype)
    k1 = jnp.asarray(rng.normal(0, 0.2, (5, 5, 1, 32)), dtype)
    k2 = jnp.asarray(rng.normal(0, 0.05, (3, 3, 32, 64)), dtype)
    b1, b2 = jnp.zeros(32, dtype), jnp.zeros(64, dtype)

    def loss(k1, b1, k2, b2):
        h = layers.onednn_conv_relu_pool(x, k1, b1)
        h = layers.onednn_conv_relu_pool(h, k2, b2)
        return jnp.sum(h.astype(jnp.float32) ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)),
                   compiler_options=layers.cpu_compiler_options() or None)

    def run():
        jax.block_until_ready(grad(k1, b1, k2, b2))

    return run


def dispatch(batch_size: int, precision: str):
    """A jitted call with the step's arguments (state, batch, key) that does no work:
    what calling a compiled step costs by itself."""
    import jax
    import jax.numpy as jnp
    from step_time import random_batch

    from charjax import config_files, train

    config = config_files.load(os.path.join(os.path.dirname(HERE), "configs", "default.py"))
    with config.unlocked():
        config.precision = precision
        config.model.tutorial.hidden = 128
    state = train.create_train_state(config, jax.random.key(0))
    images, labels = random_batch(batch_size)
    batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
    noop = jax.jit(lambda state, batch, key: state.step + 1)
    key = jax.random.key(1)

    def run():
        jax.block_until_ready(noop(state, batch, key))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32")
    parser.add_argument("--thresholds", default="64,16",
                        help="small-batch thresholds to alternate (16: the default; 64: "
                             "the policy before)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30, help="steps per block")
    parser.add_argument("--parts", action="store_true",
                        help="also time the conv blocks alone, and the dispatch")
    args = parser.parse_args()

    from step_time import charjax_step

    from charjax import kernels

    step, versions = charjax_step(args.batch_size, args.precision)
    if not kernels.available():
        raise SystemExit(f"the oneDNN kernels are not loaded: {kernels.status().detail}")
    lib = kernels._registered
    thresholds = [int(t) for t in args.thresholds.split(",")]
    pieces = {"step": step}
    if args.parts:
        pieces["conv blocks"] = conv_blocks(args.batch_size, args.precision)
        pieces["dispatch"] = dispatch(args.batch_size, args.precision)
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    print(f"batch {args.batch_size}, {args.precision}; {versions['kernels']}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    for t in thresholds:  # compile and build every primitive first
        lib.charjax_onednn_set_small_batch(t)
        for fn in pieces.values():
            _times_ms(fn, 5)
    for _ in range(args.rounds):
        for t in thresholds:
            lib.charjax_onednn_set_small_batch(t)
            for name, fn in pieces.items():
                times.setdefault((name, t), []).extend(_times_ms(fn, args.steps))
    lib.charjax_onednn_set_small_batch(0)
    print(f"load at the end {os.getloadavg()[0]:.1f}\n")
    print("| piece | threshold | block threads here | median ms | p25 | p75 | cpu ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, t), pairs in times.items():
        ms, cpu = np.array(pairs).T
        threads = 1 if args.batch_size < t else kernels.threads_per_call()
        print(f"| {name} | {t} | {threads} | {np.median(ms):.2f} | "
              f"{np.percentile(ms, 25):.2f} | {np.percentile(ms, 75):.2f} | "
              f"{np.median(cpu):.2f} |")


if __name__ == "__main__":
    main()
