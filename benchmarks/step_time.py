"""Train-step time of the tutorial network: charjax vs Keras/TensorFlow vs PyTorch eager.

Every (framework, precision, batch size) runs in a fresh subprocess of this interpreter,
and the runs are interleaved (all frameworks at one batch size, then again), so a
neighbour's load hits them alike. Each run: 10 warm-up steps, then >= 50 timed steps on
random data of the real shape; the table shows the better of the runs' medians.

    python benchmarks/step_time.py --precision all --json out.json
    python benchmarks/step_time.py --frameworks charjax,keras --batch-sizes 128
    python benchmarks/step_time.py --tables both --frameworks charjax,keras \
        --precision all --bf16-batch-sizes 128          # the RESULTS.md tables

Run it from an environment that has the frameworks (see benchmarks/RESULTS.md);
missing ones are skipped with a message; a framework that fails stops the run with its
error. `charjax` is model.impl='auto' (the oneDNN kernels where they load; the versions
line says which), `charjax-xla` XLA's own fast path, `charjax-flax` plain Flax layers.
Precisions: float32 everywhere; bf16 means
charjax `precision='bf16'` (bf16 compute, float32 master weights), Keras'
`mixed_bfloat16` policy; PyTorch runs float32 only.

`--device gpu` (the default where JAX sees a GPU) times charjax against Keras 3 on its
JAX backend and PyTorch eager and compiled, on the GPU: see benchmarks/step_time_gpu.py.
`--device cpu` is everything above (JAX kept on the CPU even where a GPU is present).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FRAMEWORKS = ("charjax", "keras", "torch")
MODULES = {"charjax": "jax", "charjax-xla": "jax", "charjax-flax": "jax", "charjax-1t": "jax",
           "keras": "tensorflow", "torch": "torch"}
# charjax: model.impl='auto' (oneDNN kernels where they load); -xla: XLA's fast path;
# -flax: plain Flax layers; -1t: 'auto' with the oneDNN blocks on one thread below batch
# 64 (the policy before they took both threads from batch 16), to measure the two
CHARJAX_IMPLS = {"charjax": "auto", "charjax-xla": "fast", "charjax-flax": "flax",
                 "charjax-1t": "auto"}
PRECISIONS = {"charjax": ("float32", "bf16"), "charjax-xla": ("float32", "bf16"),
              "charjax-flax": ("float32", "bf16"), "charjax-1t": ("float32", "bf16"),
              "keras": ("float32", "bf16"), "torch": ("float32",)}


def random_batch(batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [B, 48, 48, 1] and int32 labels in 0..61."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, 48, 48, 1), dtype=np.uint8)
    return images, rng.integers(0, 62, batch_size).astype(np.int32)


def timed(step, warmup: int, steps: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds per call of `step()`, which must return only once the
    step has finished."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


# --- workers: each builds one framework's train step and returns (step, versions) ---


def keep_torch_out() -> None:
    """Makes `import torch` fail in this (charjax) process: tensorboardX, which charjax
    imports, would otherwise load PyTorch, its thread pools and its seconds of start-up."""
    sys.modules.setdefault("torch", None)


def charjax_step(batch_size: int, precision: str, impl: str = "auto"):
    """The trainer's own config, state and `train_step` (configs/default.py, no
    augmentation), jitted as the trainer does: state donated, CPU compiler options from
    charjax.layers. Any failure to build them is an error: this times charjax's step or
    nothing."""
    import flax
    import jax
    import jax.numpy as jnp

    root = os.path.dirname(HERE)
    sys.path.insert(0, root)
    from charjax import config_files, kernels, layers, train

    config = config_files.load(os.path.join(root, "configs", "default.py"))
    with config.unlocked():
        config.precision = precision
        config.model.impl = impl
        config.model.tutorial.hidden = 128  # the tutorial's network, as Keras builds it
    state = train.create_train_state(config, jax.random.key(0))
    images, labels = random_batch(batch_size)
    batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
    options = layers.cpu_compiler_options()
    jitted = jax.jit(train.train_step, donate_argnums=0, compiler_options=options or None)
    holder = {"state": state, "i": 0}
    key = jax.random.key(1)

    def step():
        holder["i"] += 1
        holder["state"], metrics = jitted(holder["state"], batch,
                                          jax.random.fold_in(key, holder["i"]))
        jax.block_until_ready(metrics)

    versions = {"jax": jax.__version__, "flax": flax.__version__,
                "impl": f"{impl} -> {kernels.select(impl, precision=precision).impl}",
                "kernels": kernels.status().detail, "compiler_options": options}
    return step, versions


def keras_step(batch_size: int, precision: str):
    sys.path.insert(0, HERE)
    import keras
    import tensorflow as tf
    from keras_baseline import build_model

    if os.environ.get("STEP_TIME_ONE_CORE"):
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    images, labels = random_batch(batch_size)
    x = tf.constant(images.astype(np.float32) / 255.0)
    y = tf.constant(labels)
    model = build_model(mixed_bf16=precision == "bf16")

    def step():
        model.train_on_batch(x, y)

    return step, {"tensorflow": tf.__version__, "keras": keras.__version__,
                  "policy": keras.mixed_precision.global_policy().name}


def torch_step(batch_size: int, precision: str):
    import torch
    from torch import nn

    if os.environ.get("STEP_TIME_ONE_CORE"):
        torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 10 * 10, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 62),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    images, labels = random_batch(batch_size)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels.astype(np.int64))
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()

    return step, {"torch": torch.__version__, "threads": torch.get_num_threads()}


def worker(framework: str, precision: str, batch_size: int, warmup: int, steps: int) -> dict:
    if os.environ.get("STEP_TIME_ONE_CORE"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    if framework.startswith("charjax"):
        keep_torch_out()
        step, versions = charjax_step(batch_size, precision, CHARJAX_IMPLS[framework])
        if framework == "charjax-1t":
            from charjax import kernels

            if not kernels.available():
                raise RuntimeError(f"charjax-1t needs the oneDNN kernels: "
                                   f"{kernels.status().detail}")
            kernels._registered.charjax_onednn_set_small_batch(64)
            versions["kernels"] += "; one thread below batch 64"
    elif framework == "keras":
        step, versions = keras_step(batch_size, precision)
    else:
        step, versions = torch_step(batch_size, precision)
    wall, cpu = timed(step, warmup, steps)
    return {"framework": framework, "precision": precision, "batch_size": batch_size,
            "median_step_ms": float(np.median(wall)) * 1e3,
            "p10_step_ms": float(np.percentile(wall, 10)) * 1e3,
            "median_cpu_ms": float(np.median(cpu)) * 1e3, "versions": versions}


# --- driver ---


def cpu_info() -> dict:
    model = platform.processor() or "unknown"
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
           if f in flags]
    return {"cpu": model, "cores": os.cpu_count(), "isa": isa,
            "python": platform.python_version(), "platform": platform.platform()}


def run_worker(args, framework: str, precision: str, batch_size: int,
               one_core: bool) -> dict | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, precision,
           str(batch_size), "--warmup", str(args.warmup), "--steps", str(args.steps)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
               JAX_PLATFORMS="cpu")
    if one_core:
        env["STEP_TIME_ONE_CORE"] = "1"
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{framework}/{precision}/B={batch_size} failed:\n{proc.stderr[-3000:]}")


def detect_device() -> str:
    """'gpu' if JAX in a fresh process (no memory preallocated) sees a GPU, else 'cpu'."""
    code = "import jax; print(jax.default_backend())"
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_CPP_MIN_LOG_LEVEL="2")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=120)
    except subprocess.TimeoutExpired:
        return "cpu"
    lines = proc.stdout.split()
    return "gpu" if lines and lines[-1] in ("gpu", "cuda", "rocm") else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"),
                        help="where to time (default: a GPU if JAX sees one, else the CPU)")
    parser.add_argument("--precision", choices=("float32", "bf16", "all"),
                        help="default: float32 on the CPU, all on a GPU")
    parser.add_argument("--batch-sizes", help="default: 32,128,512 on the CPU, "
                        "128,512,2048 on a GPU")
    parser.add_argument("--bf16-batch-sizes",
                        help="batch sizes of the bf16 runs (default: --batch-sizes; CPU only)")
    parser.add_argument("--frameworks",
                        help="comma list of " + ", ".join(MODULES) + " on the CPU (default "
                        + ",".join(FRAMEWORKS) + "); charjax, keras-jax, torch, torch-compile "
                        "on a GPU (default: all four)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, help="timed steps per run (default: 50 on the "
                        "CPU, 100 on a GPU)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="all",
                        help="GPU only: charjax variants to add as rows, a comma list, "
                             "'all' or 'none' (see step_time_gpu.VARIANTS)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="GPU only: workers compiling side by side (timing is always "
                             "one at a time)")
    parser.add_argument("--budget-s", type=float, default=0,
                        help="seconds for the whole run (0: no limit): on a GPU, workers not "
                             "built in time are reported and skipped; on the CPU, no run "
                             "starts after it")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plan", action="store_true",
                        help="GPU only: print the workers in the order they would run "
                             "(framework, precision, batch sizes) and stop; nothing is built")
    parser.add_argument("--tables", choices=("two-thread", "one-core", "both"),
                        default="two-thread",
                        help="two-thread: every framework with its default threads (2 here), "
                             "wall time; one-core: every worker pinned to one core with one "
                             "compute thread, the work per step, less sensitive to other "
                             "load; both: the two, interleaved")
    parser.add_argument("--one-core", action="store_true", help="same as --tables one-core")
    parser.add_argument("--worker", nargs=3, metavar=("FRAMEWORK", "PRECISION", "BATCH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--gpu-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        framework, precision, batch = args.worker
        result = worker(framework, precision, int(batch), args.warmup, args.steps or 50)
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.gpu_worker:
        import step_time_gpu

        name, precision, batches = args.gpu_worker
        step_time_gpu.worker(name, precision, [int(b) for b in batches.split(",")],
                             args.warmup, args.steps or 100)
        return
    device = args.device or detect_device()
    if device == "gpu":
        import step_time_gpu

        args.precision = args.precision or "all"
        args.batch_sizes = args.batch_sizes or ",".join(map(str, step_time_gpu.GPU_BATCHES))
        args.frameworks = args.frameworks or ",".join(step_time_gpu.GPU_FRAMEWORKS)
        args.steps = args.steps or 100
        if args.plan:
            for name, precision, batches in step_time_gpu.plan(args):
                print(name, precision, ",".join(map(str, batches)))
            return
        out = step_time_gpu.run(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
            print(f"\nwrote {args.json}")
        return
    args.precision = args.precision or "float32"
    args.batch_sizes = args.batch_sizes or "32,128,512"
    args.frameworks = args.frameworks or ",".join(FRAMEWORKS)
    args.steps = args.steps or 50

    modes = {"two-thread": (False,), "one-core": (True,), "both": (False, True)}[
        "one-core" if args.one_core else args.tables]
    info = cpu_info()
    print(f"CPU: {info['cpu']}, {info['cores']} cores, ISA {' '.join(info['isa'])}")
    print(f"Python {info['python']} ({sys.executable}), {info['platform']}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    precisions = ("float32", "bf16") if args.precision == "all" else (args.precision,)
    frameworks = []
    for fw in args.frameworks.split(","):
        if fw not in MODULES:
            raise SystemExit(f"step_time: unknown framework {fw!r} on the CPU; choose from "
                             + ", ".join(MODULES))
        if importlib.util.find_spec(MODULES[fw]) is None:
            print(f"skipping {fw}: {MODULES[fw]} is not installed in {sys.executable}")
            continue
        frameworks.append(fw)
    sizes = {"float32": [int(b) for b in args.batch_sizes.split(",")],
             "bf16": [int(b) for b in (args.bf16_batch_sizes or args.batch_sizes).split(",")]}
    batches = sorted({b for p in precisions for b in sizes[p]})

    runs: dict[tuple, list[dict]] = {}
    start = time.time()
    for batch in batches:
        for rep in range(args.repeats):
            for one_core in modes:
                for prec in precisions:
                    if batch not in sizes[prec]:
                        continue
                    for fw in frameworks:
                        if prec not in PRECISIONS[fw]:
                            continue
                        if args.budget_s and time.time() - start > args.budget_s:
                            print(f"  out of time (--budget-s): {fw} {prec} B={batch} not run")
                            continue
                        r = run_worker(args, fw, prec, batch, one_core)
                        runs.setdefault((one_core, fw, prec, batch), []).append(r)
                        print(f"  run {rep + 1} {'one-core  ' if one_core else 'two-thread'}: "
                              f"{fw:12s} {prec:8s} B={batch:4d} median "
                              f"{r['median_step_ms']:8.1f} ms (cpu {r['median_cpu_ms']:.1f})",
                              flush=True)

    results = []
    versions = {}
    for (one_core, fw, prec, batch), rs in runs.items():
        best = min(r["median_step_ms"] for r in rs)
        results.append({"framework": fw, "precision": prec, "batch_size": batch,
                        "median_step_ms": round(best, 2),
                        "images_per_s": round(batch / best * 1e3, 1),
                        "run_medians_ms": [round(r["median_step_ms"], 2) for r in rs],
                        "median_cpu_ms": round(min(r["median_cpu_ms"] for r in rs), 2),
                        "one_core": one_core})
        versions[fw] = rs[0]["versions"]
    print(f"\n{time.time() - start:.0f} s; load average at the end: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    for fw, v in versions.items():
        print(f"{fw}: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    for one_core in modes:
        print("\n### " + ("One core each (pinned, one compute thread)" if one_core
                          else "Two threads (each framework's default), wall time") + "\n")
        print_table([r for r in results if r["one_core"] == one_core])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwrote {args.json}")


def print_table(results: list[dict]) -> None:
    """Markdown table; `vs Keras` = Keras step time / this step time at the same batch
    size (float32 Keras for float32 rows, mixed_bfloat16 for bf16 rows), on wall time and
    on process CPU time (the steadier of the two on a loaded machine)."""
    keras = {(r["precision"], r["batch_size"]): r for r in results if r["framework"] == "keras"}
    print("| framework | precision | batch | median ms/step | images/s | vs Keras "
          "| cpu ms/step | vs Keras (cpu) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: (r["batch_size"], r["precision"], r["framework"])):
        base = keras.get((r["precision"], r["batch_size"]))
        ratio = f"{base['median_step_ms'] / r['median_step_ms']:.2f}x" if base else "-"
        cpu_ratio = f"{base['median_cpu_ms'] / r['median_cpu_ms']:.2f}x" if base else "-"
        print(f"| {r['framework']} | {r['precision']} | {r['batch_size']} | "
              f"{r['median_step_ms']:.1f} | {r['images_per_s']:,.0f} | {ratio} | "
              f"{r['median_cpu_ms']:.1f} | {cpu_ratio} |")


if __name__ == "__main__":
    main()
