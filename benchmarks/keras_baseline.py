"""The tutorial's network in Keras 3 on TensorFlow: the baseline charjax is timed against.

Default Keras settings (no XLA: Keras' `jit_compile="auto"` turns it off on CPU-only
machines), Adam 1e-3, softmax output with sparse categorical cross-entropy, as the
tutorial has it. `--mixed-bf16` sets Keras' `mixed_bfloat16` policy (bf16 compute,
float32 variables). Needs tensorflow-cpu and keras (the `bench` extra).

    python benchmarks/keras_baseline.py --batch-size 128 --steps 50
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


def build_model(num_classes: int = 62, mixed_bf16: bool = False, from_logits: bool = False):
    """Conv 32 5x5 relu, pool, conv 64 3x3 relu, pool, dense 128 relu, dropout 0.5, dense 62."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_bf16 else "float32")
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((48, 48, 1)),
            layers.Conv2D(32, (5, 5), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            # Softmax in float32 even under mixed precision, as Keras' guide advises.
            layers.Dense(num_classes, activation=None if from_logits else "softmax",
                         dtype="float32"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    return model


def time_steps(
    model, images: np.ndarray, labels: np.ndarray, warmup: int, steps: int
) -> list[float]:
    """Seconds per `train_on_batch` call (one optimizer step; the loss comes back as numpy,
    so every call has finished when it returns)."""
    import tensorflow as tf

    x, y = tf.constant(images), tf.constant(labels)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--mixed-bf16", action="store_true", help="Keras mixed_bfloat16 policy")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra- and inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--from-logits", action="store_true",
                        help="linear head + from_logits loss instead of the tutorial's softmax")
    args = parser.parse_args()

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch_size, 48, 48, 1), dtype=np.float32)
    labels = rng.integers(0, 62, args.batch_size).astype(np.int32)
    model = build_model(mixed_bf16=args.mixed_bf16, from_logits=args.from_logits)
    print(f"params: {model.count_params():,}")
    times = time_steps(model, images, labels, args.warmup, args.steps)
    ms = float(np.median(times)) * 1e3
    rate = args.batch_size / ms * 1e3
    print(f"batch {args.batch_size}: median {ms:.1f} ms/step, {rate:,.0f} img/s")


if __name__ == "__main__":
    main()
