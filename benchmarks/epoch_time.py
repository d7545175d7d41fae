"""One training epoch of the default config: charjax with augmentation vs Keras `fit` without.

Both train the tutorial network on the same arrays (configs/default.py's synthetic
training split, batch 128, one epoch, same precision). charjax runs its trainer's own
epoch loop (`train.train_epoch` over `make_device_train_step`: on-device batches and
augmentation, model.impl='auto'); Keras runs `model.fit(x, y, batch_size, epochs=1,
shuffle=True)` on float [0, 1] images with no augmentation. Compilation and Keras'
tracing are warmed up first and not counted. Each framework runs in a fresh subprocess,
interleaved over `--repeats` rounds; the table shows the better of each one's epochs.

    python benchmarks/epoch_time.py                      # float32, ~1.5 min on 2 cores
    python benchmarks/epoch_time.py --precision all
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _config(precision: str, augment: bool):
    sys.path.insert(0, ROOT)
    from charjax import config_files

    config = config_files.load(os.path.join(ROOT, "configs", "default.py"))
    with config.unlocked():
        config.precision = precision
        config.augment.enabled = augment
        config.model.tutorial.hidden = 128  # the tutorial's network, as Keras builds it
    return config


def _train_arrays(config):
    from charjax import train

    splits = train.load_splits(config)
    return splits.train.images, splits.train.labels


def charjax_epoch(precision: str) -> dict:
    import jax
    import jax.numpy as jnp

    from charjax import kernels, train

    config = _config(precision, augment=True)
    images, labels = _train_arrays(config)
    state = train.create_train_state(config, jax.random.key(0), len(images) // config.batch_size)
    step_fn = train.make_device_train_step(config.batch_size, config.augment)
    data = (jnp.asarray(images), jnp.asarray(labels))
    key = jax.random.key(config.seed)
    # compile (and warm the caches) with one step outside the timed epoch
    perm = jnp.arange(len(images), dtype=jnp.int32)
    state, metrics = step_fn(state, *data, perm, 0, key)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    state, metrics = train.train_epoch(state, step_fn, data, key, 1, config.batch_size)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": len(images), "augment": True,
            "train_accuracy": metrics["accuracy"],
            "detail": kernels.select("auto", precision=config.precision).description}


def keras_epoch(precision: str) -> dict:
    sys.path.insert(0, HERE)
    import keras
    import numpy as np
    import tensorflow as tf
    from keras_baseline import build_model

    config = _config(precision, augment=False)
    images, labels = _train_arrays(config)
    x = images.astype(np.float32) / 255.0
    y = labels.astype(np.int32)
    keras.utils.set_random_seed(0)
    model = build_model(mixed_bf16=precision == "bf16")
    warm = 5 * config.batch_size
    model.fit(x[:warm], y[:warm], batch_size=config.batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": len(x), "augment": False,
            "train_accuracy": float(history.history["accuracy"][-1]),
            "detail": f"tensorflow {tf.__version__}, keras {keras.__version__}, "
                      f"{keras.mixed_precision.global_policy().name}"}


def _run(framework: str, precision: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, precision]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{framework}/{precision} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("float32", "bf16", "all"), default="float32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        framework, precision = args.worker
        fn = charjax_epoch if framework == "charjax" else keras_epoch
        print("RESULT " + json.dumps(fn(precision)), flush=True)
        return

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    precisions = ("float32", "bf16") if args.precision == "all" else (args.precision,)
    best: dict[tuple[str, str], dict] = {}
    start = time.time()
    for rep in range(args.repeats):
        for precision in precisions:
            for framework in ("charjax", "keras"):
                r = _run(framework, precision)
                print(f"  run {rep + 1}: {framework:8s} {precision:8s} {r['seconds']:6.1f} s "
                      f"({r['detail']})", flush=True)
                key = (framework, precision)
                if key not in best or r["seconds"] < best[key]["seconds"]:
                    best[key] = r
    print(f"\n{time.time() - start:.0f} s; load average at the end: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| framework | precision | augmentation | images | epoch s | images/s | vs Keras |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (framework, precision), r in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        keras_s = best.get(("keras", precision), {}).get("seconds")
        ratio = f"{keras_s / r['seconds']:.2f}x" if keras_s else "-"
        print(f"| {framework} | {precision} | {'on' if r['augment'] else 'off'} | "
              f"{r['images']:,} | {r['seconds']:.1f} | {r['images'] / r['seconds']:,.0f} | "
              f"{ratio} |")


if __name__ == "__main__":
    main()
