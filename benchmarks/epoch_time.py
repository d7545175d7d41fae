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
    python benchmarks/epoch_time.py --device gpu --warm-epochs 1 --json out.json

On a GPU (`--device gpu`, the default where JAX sees one) Keras runs on its JAX backend
(`keras-jax`), and one whole epoch runs untimed first (`--warm-epochs`, default 1 there),
so the timed one includes no compilation at all (the epoch permutation and the metrics'
mean compile on first use too). `--override FIELD=VALUE` changes a config field (skipped
with a line where the config has no such field). A missing Keras is skipped with a line.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _parse_value(text: str):
    """A Python literal (2, 0.5, True, (0.9, 1.1)), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config, overrides: list[str]) -> list[str]:
    """Sets FIELD=VALUE (dotted fields) where the config has the field; returns lines
    saying which were applied and which skipped."""
    said = []
    for item in overrides:
        field, _, text = item.partition("=")
        *parents, leaf = field.split(".")
        node = config
        for part in parents:
            node = node.get(part) if hasattr(node, "get") else None
        if node is None or not hasattr(node, "get") or leaf not in node:
            said.append(f"override {field}: no such config field here, skipped")
            continue
        try:
            with config.unlocked():
                node[leaf] = _parse_value(text)
        except (TypeError, ValueError) as err:
            said.append(f"override {field}: {err}, skipped")
            continue
        said.append(f"override {field}={node[leaf]!r}")
    return said


def _config(precision: str, augment: bool, overrides: list[str] | None = None):
    sys.path.insert(0, ROOT)
    from charjax import config_files

    config = config_files.load(os.path.join(ROOT, "configs", "default.py"))
    with config.unlocked():
        config.precision = precision
        config.augment.enabled = augment
        config.model.tutorial.hidden = 128  # the tutorial's network, as Keras builds it
    for line in apply_overrides(config, overrides or []):
        print(line, file=sys.stderr)
    return config


def _train_arrays(config):
    from charjax import train

    splits = train.load_splits(config)
    return splits.train.images, splits.train.labels


def charjax_epoch(precision: str, overrides: list[str], warm_epochs: int) -> dict:
    import jax
    import jax.numpy as jnp

    from charjax import kernels, train

    config = _config(precision, augment=True, overrides=overrides)
    images, labels = _train_arrays(config)
    state = train.create_train_state(config, jax.random.key(0), len(images) // config.batch_size)
    step_fn = train.make_device_train_step(config.batch_size, config.augment)
    data = (jnp.asarray(images), jnp.asarray(labels))
    key = jax.random.key(config.seed)
    # compile (and warm the caches) with one step outside the timed epoch
    perm = jnp.arange(len(images), dtype=jnp.int32)
    state, metrics = step_fn(state, *data, perm, 0, key)
    jax.block_until_ready(metrics)
    for epoch in range(1, warm_epochs + 1):
        state, metrics = train.train_epoch(state, step_fn, data, key, epoch, config.batch_size)
    start = time.perf_counter()
    state, metrics = train.train_epoch(state, step_fn, data, key, warm_epochs + 1,
                                       config.batch_size)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": len(images), "augment": True,
            "batch_size": config.batch_size, "train_accuracy": metrics["accuracy"],
            "detail": kernels.select("auto", precision=config.precision).description}


def keras_epoch(precision: str, overrides: list[str], warm_epochs: int) -> dict:
    sys.path.insert(0, HERE)
    import keras
    import numpy as np
    from keras_baseline import build_model

    config = _config(precision, augment=False, overrides=overrides)
    images, labels = _train_arrays(config)
    x = images.astype(np.float32) / 255.0
    y = labels.astype(np.int32)
    keras.utils.set_random_seed(0)
    model = build_model(mixed_bf16=precision == "bf16")
    if warm_epochs:
        model.fit(x, y, batch_size=config.batch_size, epochs=warm_epochs, verbose=0)
    else:
        warm = 5 * config.batch_size
        model.fit(x[:warm], y[:warm], batch_size=config.batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        backend = f"tensorflow {tf.__version__}"
    return {"seconds": seconds, "images": len(x), "augment": False,
            "batch_size": config.batch_size,
            "train_accuracy": float(history.history["accuracy"][-1]),
            "detail": f"{backend}, keras {keras.__version__}, "
                      f"{keras.mixed_precision.global_policy().name}"}


def _run(framework: str, precision: str, args, deadline: float) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               KERAS_BACKEND="jax" if framework == "keras-jax" else "tensorflow")
    if args.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, precision,
           "--warm-epochs", str(args.warm_epochs)]
    for item in args.override:
        cmd += ["--override", item]
    timeout = None if deadline == float("inf") else max(1.0, deadline - time.time())
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{framework}/{precision}: no result within the budget") from None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{framework}/{precision} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"),
                        help="default: a GPU if JAX sees one, else the CPU")
    parser.add_argument("--precision", choices=("float32", "bf16", "all"), default="float32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--frameworks", default="charjax,keras",
                        help="charjax and/or keras (Keras on TensorFlow on the CPU, on JAX "
                             "on a GPU)")
    parser.add_argument("--warm-epochs", type=int,
                        help="untimed epochs before the timed one (default: 0 on the CPU, "
                             "1 on a GPU)")
    parser.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                        help="set a config field, e.g. data.synthetic.num_images=6200")
    parser.add_argument("--budget-s", type=float, default=0,
                        help="seconds for the whole run; runs not finished are reported")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        framework, precision = args.worker
        if framework == "charjax":
            sys.modules.setdefault("torch", None)  # tensorboardX would load it: see step_time
        fn = charjax_epoch if framework == "charjax" else keras_epoch
        result = fn(precision, args.override, args.warm_epochs or 0)
        print("RESULT " + json.dumps(result), flush=True)
        return

    if args.device is None:
        sys.path.insert(0, HERE)
        from step_time import detect_device

        args.device = detect_device()
    if args.warm_epochs is None:
        args.warm_epochs = 1 if args.device == "gpu" else 0
    frameworks = []
    for fw in args.frameworks.split(","):
        if fw in ("keras", "keras-jax"):
            fw = "keras-jax" if args.device == "gpu" else "keras"
            module = "keras" if args.device == "gpu" else "tensorflow"
            if importlib.util.find_spec(module) is None:
                print(f"skipping {fw}: {module} is not installed in {sys.executable}")
                continue
        elif fw != "charjax":
            raise SystemExit(f"epoch_time: unknown framework {fw!r}; choose charjax, keras")
        frameworks.append(fw)
    deadline = time.time() + args.budget_s if args.budget_s else float("inf")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    precisions = ("float32", "bf16") if args.precision == "all" else (args.precision,)
    best: dict[tuple[str, str], dict] = {}
    failures = []
    start = time.time()
    for rep in range(args.repeats):
        for precision in precisions:
            for framework in frameworks:
                try:
                    r = _run(framework, precision, args, deadline)
                except RuntimeError as err:
                    if args.json is None and args.device == "cpu":
                        raise SystemExit(str(err)) from None
                    failures.append({"framework": framework, "precision": precision,
                                     "error": str(err)[-1500:]})
                    print(f"  run {rep + 1}: {framework:9s} {precision:8s} failed: "
                          f"{str(err)[-300:]}", flush=True)
                    continue
                width, digits = (9, 3) if args.device == "gpu" else (8, 1)
                print(f"  run {rep + 1}: {framework:{width}s} {precision:8s} "
                      f"{r['seconds']:{digits + 5}.{digits}f} s ({r['detail']})", flush=True)
                key = (framework, precision)
                if key not in best or r["seconds"] < best[key]["seconds"]:
                    best[key] = r
    print(f"\n{time.time() - start:.0f} s; load average at the end: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    digits = 3 if args.device == "gpu" else 1
    print("| framework | precision | augmentation | images | epoch s | images/s | vs Keras |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (framework, precision), r in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        keras_s = best.get(("keras" if args.device == "cpu" else "keras-jax", precision),
                           {}).get("seconds")
        ratio = f"{keras_s / r['seconds']:.2f}x" if keras_s else "-"
        print(f"| {framework} | {precision} | {'on' if r['augment'] else 'off'} | "
              f"{r['images']:,} | {r['seconds']:.{digits}f} | "
              f"{r['images'] / r['seconds']:,.0f} | {ratio} |")
    if args.json:
        results = [dict(r, framework=fw, precision=p) for (fw, p), r in best.items()]
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "warm_epochs": args.warm_epochs,
                       "overrides": args.override, "results": results,
                       "failures": failures}, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
