"""The floor under any XLA:CPU train step of the tutorial network: its matmul-class work
alone, each piece timed in the fastest form XLA:CPU offers here.

For every convolution pass (and the dense layers) this times several formulations and
backends - Eigen convolution, YNNPACK convolution, elementwise taps, GEMM on ready-made
im2col patches (patch building NOT counted) - and keeps the fastest. The sum of those
minima leaves out pooling, ReLU, loss, optimizer and every memory pass between the
pieces, so no XLA:CPU step can beat it. With `--keras`, Keras' whole float32 step is
timed in a subprocess before and after, for comparison on the same machine state.

    python benchmarks/conv_floor.py --batch-size 128 --keras
    # one core, one compute thread for both (the load-robust comparison):
    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 1 \
        python benchmarks/conv_floor.py --keras --keras-threads 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from charjax import layers  # noqa: E402

EIGEN = {"xla_cpu_experimental_ynn_fusion_type": ""}
YNN_CONV = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}
YNN_DOT = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
CONTRACT_0 = (((0,), (0,)), ((), ()))


def kernel_grad(x, g, shape):
    return jax.vjp(lambda k: layers.conv_valid(x, k), jnp.zeros(shape, x.dtype))[1](g)[0]


def input_grad(g, k, shape):
    return jax.vjp(lambda x: layers.conv_valid(x, k), jnp.zeros(shape, g.dtype))[1](g)[0]


def candidates(b: int, dtype) -> dict[str, tuple[float, list]]:
    """piece -> (GFLOP, [(name, fn, args, compiler options), ...])."""
    r = np.random.default_rng(0)

    def a(*shape):
        return jnp.asarray(r.standard_normal(shape) * 0.1, dtype)

    x1, w1, g1 = a(b, 48, 48, 1), a(5, 5, 1, 32), a(b, 44, 44, 32)
    x2, w2, g2 = a(b, 22, 22, 32), a(3, 3, 32, 64), a(b, 20, 20, 64)
    p2, gm2 = a(b * 400, 288), a(b * 400, 64)
    h, w3, gh = a(b, 6400), a(6400, 128), a(b, 128)
    conv, direct = layers.conv_valid, layers._conv_single_channel
    f1 = 2 * b * 44 * 44 * 25 * 32 / 1e9
    f2 = 2 * b * 20 * 20 * 288 * 64 / 1e9
    f3 = 2 * b * 6400 * 128 / 1e9
    return {
        "conv1 forward": (f1, [
            ("Eigen conv", conv, (x1, w1), EIGEN),
            ("YNNPACK conv", conv, (x1, w1), YNN_CONV),
            ("25 elementwise taps", lambda x, k: direct(x, k, x.dtype), (x1, w1), EIGEN)]),
        "conv1 weight grad": (f1, [
            ("Eigen conv", lambda x, g: kernel_grad(x, g, w1.shape), (x1, g1), EIGEN),
            ("YNNPACK conv", lambda x, g: kernel_grad(x, g, w1.shape), (x1, g1), YNN_CONV)]),
        "conv2 forward": (f2, [
            ("Eigen conv", conv, (x2, w2), EIGEN),
            ("YNNPACK conv", conv, (x2, w2), YNN_CONV),
            ("GEMM on given patches", lambda p, k: p @ k.reshape(288, 64), (p2, w2), YNN_DOT)]),
        "conv2 input grad": (f2, [
            ("Eigen conv", lambda k, g: input_grad(g, k, x2.shape), (w2, g2), EIGEN),
            ("GEMM, no col2im", lambda k, g: g @ k.reshape(288, 64).T, (w2, gm2), YNN_DOT)]),
        "conv2 weight grad": (f2, [
            ("Eigen conv", lambda x, g: kernel_grad(x, g, w2.shape), (x2, g2), EIGEN),
            ("GEMM on given patches", lambda p, g: lax.dot_general(p, g, CONTRACT_0),
             (p2, gm2), EIGEN)]),
        "dense fwd+grads": (3 * f3, [
            ("Eigen GEMMs", lambda x, w, g: (x @ w, g @ w.T, x.T @ g), (h, w3, gh), EIGEN),
            ("YNNPACK GEMMs", lambda x, w, g: (x @ w, g @ w.T, x.T @ g), (h, w3, gh), YNN_DOT)]),
    }


def time_fn(fn, args, rounds: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def keras_ms(batch: int, threads: int) -> float | None:
    script = os.path.join(HERE, "keras_baseline.py")
    proc = subprocess.run([sys.executable, script, "--batch-size", str(batch), "--steps", "50",
                           "--threads", str(threads)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if "median" in line:
            return float(line.split("median")[1].split("ms")[0])
    print(proc.stderr[-1000:], file=sys.stderr)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keras", action="store_true", help="time Keras' float32 step too")
    parser.add_argument("--keras-threads", type=int, default=0,
                        help="TensorFlow threads for that step (0: its default)")
    args = parser.parse_args()

    before = keras_ms(args.batch_size, args.keras_threads) if args.keras else None
    pieces = candidates(args.batch_size, jnp.float32)
    jitted = {(piece, name): (jax.jit(fn, compiler_options=opts), fn_args)
              for piece, (_, forms) in pieces.items() for name, fn, fn_args, opts in forms}
    results: dict = {key: [] for key in jitted}
    for _ in range(3):  # interleave the forms, so load drifts hit them alike
        for key, (fn, fn_args) in jitted.items():
            results[key].append(time_fn(fn, fn_args, args.rounds // 3 + 1))
    after = keras_ms(args.batch_size, args.keras_threads) if args.keras else None

    print(f"batch {args.batch_size}, jax {jax.__version__}, {os.cpu_count()} cores\n")
    print("| piece | GFLOP | form | ms | GFLOP/s |")
    print("|---|---:|---|---:|---:|")
    floor = 0.0
    for piece, (gflop, forms) in pieces.items():
        times = {name: min(results[(piece, name)]) for name, *_ in forms}
        best = min(times, key=times.get)
        floor += times[best]
        for name, ms in times.items():
            mark = " **(min)**" if name == best else ""
            print(f"| {piece} | {gflop:.2f} | {name}{mark} | {ms:.1f} | {gflop / ms * 1e3:.0f} |")
    print(f"\nfloor (sum of the minima): {floor:.1f} ms/step")
    if before and after:
        print(f"Keras float32 whole step: {before:.1f} ms before, {after:.1f} ms after")


if __name__ == "__main__":
    main()
