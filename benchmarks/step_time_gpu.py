"""Train-step time on a CUDA GPU: charjax vs Keras 3 on JAX vs PyTorch eager and compiled.

`step_time.py --device gpu` runs this. Each (framework, precision) is one worker process
(its own allocator and threads; `KERAS_BACKEND=jax` set before Keras is imported) that
builds and compiles its steps for every batch size, reports the first call of each
(compilation included) and waits. Once every worker is ready, or the time budget says
stop, the workers are timed one at a time, in turn, `--repeats` rounds: nothing else
runs on the GPU while one is timed. `--jobs N` lets N workers compile side by side (the
compile seconds are then wall time under that contention). Each timed run: warm-up
steps, then `--steps` steps, each waited for; the table shows the better of the rounds'
medians.

    python benchmarks/step_time.py --device gpu                     # everything below
    python benchmarks/step_time.py --device gpu --frameworks charjax,torch-compile \
        --batch-sizes 2048 --variants none --json out.json
    python benchmarks/step_time.py --device gpu --plan              # the workers, in order

Frameworks: `charjax` (the trainer's `train_step`, model.impl='auto', which is plain Flax
layers on a GPU), `keras-jax` (the tutorial's Keras model, `train_on_batch` on arrays
already on the GPU), `torch` (eager) and `torch-compile` (`torch.compile(model)`), both
with fused Adam, cuDNN autotuning on and TF32 matmuls allowed (JAX's default precision
for float32 on this GPU is TF32 too). bf16: charjax `precision='bf16'`, Keras
`mixed_bfloat16`, PyTorch autocast to bfloat16; float32 master weights in all.
Variants (`--variants`, rows named `charjax+...`) try one change each against the
charjax row of the same precision: see VARIANTS. A missing framework is skipped with a
line; a worker that fails or runs out of time is reported and the rest go on.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GPU_FRAMEWORKS = ("charjax", "keras-jax", "torch", "torch-compile")
GPU_BATCHES = (128, 512, 2048)
MODULES = {"charjax": "jax", "keras-jax": "keras", "torch": "torch", "torch-compile": "torch"}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One change to the charjax row: a model impl, XLA flags, or steps per jitted call."""

    why: str
    precisions: tuple[str, ...]
    batches: tuple[int, ...]
    impl: str = "auto"
    xla_flags: str = ""
    steps_per_call: int = 1
    whole_batch: bool = False  # charjax.layers without its CPU cache-sized batch chunks


# Short on purpose: each is one more process and one more compilation per batch size.
VARIANTS: dict[str, Variant] = {
    "charjax+fast": Variant(
        "charjax.layers' conv-pool block (first-maximum index saved forward: no "
        "select_and_scatter in the pool's gradient; bias and ReLU after the pool; the "
        "1-channel conv as 25 multiply-adds), on the whole batch instead of the CPU's "
        "16-image chunks", ("float32", "bf16"), (2048,), impl="fast", whole_batch=True),
    "charjax+nhwc": Variant(
        "convolutions in NHWC (the data's own layout) instead of XLA's float32 NCHW choice",
        ("float32",), (2048,), xla_flags="--xla_gpu_force_conv_nhwc=true"),
    "charjax+cublas": Variant(
        "dense layers by cuBLAS instead of Triton GEMM fusions (and their autotuning)",
        ("bf16",), (2048,), xla_flags="--xla_gpu_enable_triton_gemm=false"),
    "charjax+autotune0": Variant(
        "no autotuning: what it costs in compile seconds and buys in step time",
        ("float32",), (2048,), xla_flags="--xla_gpu_autotune_level=0"),
    "charjax+scan4": Variant(
        "4 steps per jitted call (lax.scan): launch overhead where the batch is small",
        ("float32",), (128,), steps_per_call=4),
}


def random_batch(batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, 48, 48, 1), dtype=np.uint8)
    return images, rng.integers(0, 62, batch_size).astype(np.int32)


# --- workers: each builder returns (step, versions); step() returns once the step is done ---


def charjax_builder(precision: str, impl: str = "auto", steps_per_call: int = 1,
                    whole_batch: bool = False):
    """The trainer's config, state and `train_step` (configs/default.py at the tutorial's
    width, no augmentation), jitted with the state donated. With steps_per_call > 1, one
    call runs that many steps in a lax.scan (same batch, fresh dropout keys)."""
    import flax
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, os.path.dirname(HERE))
    from charjax import config_files, kernels, layers, train

    if whole_batch:  # a lax.map over 16-image chunks would be 128 sequential launches
        layers._in_chunks = lambda fn, *arrays, chunk=0: fn(*arrays)

    config = config_files.load(os.path.join(os.path.dirname(HERE), "configs", "default.py"))
    with config.unlocked():
        config.precision = precision
        config.model.impl = impl
        config.model.tutorial.hidden = 128  # the tutorial's network, as Keras builds it

    def build(batch_size: int):
        state = train.create_train_state(config, jax.random.key(0))
        images, labels = random_batch(batch_size)
        batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}

        def many(state, batch, key):
            def body(s, k):
                s, metrics = train.train_step(s, batch, k)
                return s, metrics
            state, metrics = jax.lax.scan(body, state, jax.random.split(key, steps_per_call))
            return state, jax.tree_util.tree_map(lambda m: m[-1], metrics)

        fn = train.train_step if steps_per_call == 1 else many
        jitted = jax.jit(fn, donate_argnums=0)
        holder = {"state": state, "i": 0}
        key = jax.random.key(1)

        def step():
            holder["i"] += 1
            holder["state"], metrics = jitted(holder["state"], batch,
                                              jax.random.fold_in(key, holder["i"]))
            jax.block_until_ready(metrics)

        return step

    versions = {"jax": jax.__version__, "flax": flax.__version__,
                "impl": f"{impl} -> {kernels.select(impl, precision=precision).impl}",
                "devices": ", ".join(d.device_kind for d in jax.local_devices()),
                "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
    return build, versions


def keras_jax_builder(precision: str):
    """The tutorial's Keras model on Keras' JAX backend; `train_on_batch` on device arrays
    (the loss comes back as numpy, so each call has finished when it returns)."""
    sys.path.insert(0, HERE)
    import jax
    import keras
    from keras_baseline import build_model

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"Keras runs on {keras.backend.backend()}, not jax: set "
                           "KERAS_BACKEND=jax before importing it")

    def build(batch_size: int):
        images, labels = random_batch(batch_size)
        x = jax.device_put(images.astype(np.float32) / 255.0)
        y = jax.device_put(labels)
        model = build_model(mixed_bf16=precision == "bf16")

        def step():
            model.train_on_batch(x, y)

        return step

    versions = {"keras": keras.__version__, "jax": jax.__version__,
                "backend": keras.backend.backend(),
                "policy": "mixed_bfloat16" if precision == "bf16" else "float32"}
    return build, versions


def torch_builder(precision: str, compiled: bool):
    """The tutorial's network in PyTorch on CUDA: fused Adam, cuDNN autotuning, TF32
    matmuls; bf16 by autocast. Compiled: `torch.compile(model, dynamic=False)`, one model
    per batch size."""
    import torch
    from torch import nn

    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    # the CPU only for a dry run of this script on a machine without a GPU
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def build(batch_size: int):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * 10 * 10, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 62),
        ).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        forward = torch.compile(model, dynamic=False) if compiled else model
        loss_fn = nn.CrossEntropyLoss()
        images, labels = random_batch(batch_size)
        x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        x = x.contiguous().to(device)
        y = torch.from_numpy(labels.astype(np.int64)).to(device)
        model.train()

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(forward(x), y)
            loss.backward()
            optimizer.step()
            loss.item()

        return step

    versions = {"torch": torch.__version__, "cuda": torch.version.cuda,
                "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                "compile": "torch.compile(dynamic=False)" if compiled else "eager"}
    return build, versions


def _say(kind: str, payload: dict | None = None) -> None:
    print(kind + ("" if payload is None else " " + json.dumps(payload)), flush=True)


def worker(name: str, precision: str, batches: list[int], warmup: int, steps: int) -> None:
    """Builds every batch size's step (first call timed: compilation included), says
    READY, then runs a timed round per TIME line on stdin until QUIT or end of input."""
    variant = VARIANTS.get(name)
    if name.startswith("charjax"):
        sys.modules.setdefault("torch", None)  # as step_time.keep_torch_out
    if variant is not None:
        build, versions = charjax_builder(precision, variant.impl, variant.steps_per_call,
                                          variant.whole_batch)
        per_call = variant.steps_per_call
    elif name == "charjax":
        build, versions = charjax_builder(precision)
        per_call = 1
    elif name == "keras-jax":
        build, versions = keras_jax_builder(precision)
        per_call = 1
    else:
        build, versions = torch_builder(precision, compiled=name == "torch-compile")
        per_call = 1
    steps_by_batch = {}
    for batch in batches:
        try:
            step = build(batch)
            start = time.perf_counter()
            step()
            first = time.perf_counter() - start
            for _ in range(warmup):
                step()
        except Exception as err:  # noqa: BLE001 - reported per batch, the others go on
            _say("FAILED", {"batch_size": batch, "error": f"{type(err).__name__}: {err}"[:500]})
            continue
        steps_by_batch[batch] = step
        _say("BUILT", {"batch_size": batch, "first_step_s": round(first, 3),
                       "versions": versions})
    _say("READY")
    calls = max(1, steps // per_call)
    for line in sys.stdin:
        if line.strip() != "TIME":
            break
        for batch, step in steps_by_batch.items():
            for _ in range(max(1, warmup // 2)):
                step()
            wall = []
            for _ in range(calls):
                start = time.perf_counter()
                step()
                wall.append((time.perf_counter() - start) / per_call)
            _say("RESULT", {"batch_size": batch,
                            "median_step_ms": float(np.median(wall)) * 1e3,
                            "p10_step_ms": float(np.percentile(wall, 10)) * 1e3})
        _say("DONE")


# --- driver ---


class Worker:
    """One worker process, its stdout read line by line on a thread."""

    def __init__(self, name: str, precision: str, batches: list[int], args, env: dict):
        self.name, self.precision, self.batches = name, precision, batches
        cmd = [sys.executable, os.path.join(HERE, "step_time.py"), "--gpu-worker", name,
               precision, ",".join(map(str, batches)), "--warmup", str(args.warmup),
               "--steps", str(args.steps)]
        self.stderr = tempfile.TemporaryFile("w+")
        # in the driver's process group: a Ctrl-C, or gpu_check's limit, reaches them all
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.built: dict[int, dict] = {}
        self.errors: dict[int, str] = {}
        self.started = time.time()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def label(self) -> str:
        return f"{self.name}/{self.precision}"

    def until(self, marker: str, deadline: float) -> tuple[list[tuple[str, dict]], str]:
        """Messages up to `marker`; status 'ok', 'exited' (with no marker) or 'timeout'."""
        got = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, min(1.0, deadline - time.time())))
            except queue.Empty:
                if time.time() >= deadline:
                    return got, "timeout"
                continue
            if line is None:
                return got, "exited"
            kind, _, payload = line.partition(" ")
            if kind == marker:
                return got, "ok"
            if kind in ("BUILT", "FAILED", "RESULT"):
                got.append((kind, json.loads(payload)))

    def take_built(self, messages: list[tuple[str, dict]]) -> None:
        for kind, msg in messages:
            if kind == "BUILT":
                self.built[msg["batch_size"]] = msg
            elif kind == "FAILED":
                self.errors[msg["batch_size"]] = msg["error"]

    def stderr_tail(self, chars: int = 1500) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-chars:].strip()

    def stop(self, graceful: bool = True) -> None:
        if graceful and self.proc.poll() is None:
            try:
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def plan(args) -> list[tuple[str, str, list[int]]]:
    """(name, precision, batches) per worker, in priority order: the rows the targets
    read first (charjax and torch.compile), then Keras and eager PyTorch, then variants."""
    batches = [int(b) for b in args.batch_sizes.split(",")]
    precisions = ("float32", "bf16") if args.precision == "all" else (args.precision,)
    frameworks = args.frameworks.split(",")
    order = ["charjax", "torch-compile", "keras-jax", "torch"]
    jobs = []
    for fw in sorted(frameworks, key=lambda f: order.index(f) if f in order else len(order)):
        if fw not in MODULES:
            raise SystemExit(f"step_time: unknown framework {fw!r} on the GPU; choose from "
                             + ", ".join(GPU_FRAMEWORKS))
        if importlib.util.find_spec(MODULES[fw]) is None:
            print(f"skipping {fw}: {MODULES[fw]} is not installed in {sys.executable}")
            continue
        jobs.extend((fw, p, batches) for p in precisions)
    names = [] if args.variants == "none" else (
        list(VARIANTS) if args.variants == "all" else args.variants.split(","))
    for name in names:
        if name not in VARIANTS:
            raise SystemExit(f"step_time: unknown variant {name!r}; choose from "
                             + ", ".join(VARIANTS))
        v = VARIANTS[name]
        jobs.extend((name, p, list(v.batches)) for p in v.precisions if p in precisions)
    return jobs


def worker_env(name: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_PYTHON_CLIENT_PREALLOCATE="false",
               TF_CPP_MIN_LOG_LEVEL="2")
    variant = VARIANTS.get(name)
    if variant is not None and variant.xla_flags:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {variant.xla_flags}".strip()
    return env


def run(args) -> dict:
    """Prepares the workers (`args.jobs` at a time), then times them in turn; returns
    {'results': [...], 'failures': [...], 'versions': {...}} and prints the table. No
    worker outlives it, whatever stops it."""
    started: list[Worker] = []
    try:
        return _run(args, started)
    finally:
        for w in started:
            w.stop(graceful=False)


def _run(args, started: list[Worker]) -> dict:
    t0 = time.time()
    deadline = t0 + args.budget_s if args.budget_s else float("inf")
    # time kept back for the timed rounds: every worker's steps, a few seconds each
    reserve = 20.0
    jobs = plan(args)
    print(f"GPU step times: {len(jobs)} workers, {args.jobs} compiling at a time, "
          f"budget {args.budget_s or 'none'} s", flush=True)
    pending, preparing, ready, failures = list(jobs), [], [], []
    while pending or preparing:
        while pending and len(preparing) < args.jobs and time.time() < deadline - reserve:
            name, prec, batches = pending.pop(0)
            preparing.append(Worker(name, prec, batches, args, worker_env(name)))
            started.append(preparing[-1])
        if not preparing:
            break
        for w in list(preparing):
            messages, status = w.until("READY", min(time.time() + 0.2, deadline - reserve))
            w.take_built(messages)
            for batch, msg in messages_built(messages):
                print(f"  built {w.label():24s} B={batch:5d}: first step "
                      f"{msg['first_step_s']:.1f} s", flush=True)
            if status == "ok":
                preparing.remove(w)
                ready.append(w)
            elif status == "exited" or time.time() >= deadline - reserve:
                why = (f"exited: {w.stderr_tail()}" if status == "exited" else
                       f"not built within the budget ({time.time() - w.started:.0f} s)")
                print(f"  {w.label()}: {why[-300:]}", flush=True)
                for batch in w.batches:
                    if batch not in w.errors:
                        w.errors[batch] = why
                w.built.clear()
                w.stop(graceful=False)
                preparing.remove(w)
    for w in started:
        for batch, error in w.errors.items():
            failures.append({"framework": w.name, "precision": w.precision,
                             "batch_size": batch, "error": error})
    for name, prec, batches in pending:
        for batch in batches:
            failures.append({"framework": name, "precision": prec, "batch_size": batch,
                             "error": "skipped: the time budget ran out before it started"})
    ready = [w for w in ready if w.proc.poll() is None and w.built]

    runs: dict[tuple, list[dict]] = {}
    for rep in range(args.repeats):
        for w in ready:
            if time.time() >= deadline:
                break
            try:
                w.proc.stdin.write("TIME\n")
                w.proc.stdin.flush()
            except OSError:
                continue
            messages, status = w.until("DONE", min(deadline, time.time() + 120))
            for kind, msg in messages:
                if kind == "RESULT":
                    runs.setdefault((w.name, w.precision, msg["batch_size"]), []).append(msg)
                    print(f"  run {rep + 1}: {w.label():24s} B={msg['batch_size']:5d} median "
                          f"{msg['median_step_ms']:8.3f} ms", flush=True)
            if status != "ok":
                print(f"  {w.label()}: timing {status}", flush=True)
    for w in ready:
        w.stop()

    results, versions = [], {}
    for w in ready:
        for batch, built in w.built.items():
            rs = runs.get((w.name, w.precision, batch))
            versions[w.name] = built["versions"]
            if not rs:
                failures.append({"framework": w.name, "precision": w.precision,
                                 "batch_size": batch, "error": "built but not timed: out of "
                                 "time, or the worker failed (see the output above)"})
                continue
            best = min(r["median_step_ms"] for r in rs)
            results.append({"framework": w.name, "precision": w.precision, "batch_size": batch,
                            "median_step_ms": round(best, 4),
                            "images_per_s": round(batch / best * 1e3, 1),
                            "run_medians_ms": [round(r["median_step_ms"], 4) for r in rs],
                            "first_step_s": built["first_step_s"]})
    print(f"\n{time.time() - t0:.0f} s\n")
    for fw, v in versions.items():
        print(f"{fw}: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print()
    print("\n".join(table(results)))
    for f in failures:
        print(f"- {f['framework']} {f['precision']} B={f['batch_size']}: {f['error'][:300]}")
    return {"results": results, "failures": failures, "versions": versions,
            "variants": {k: v.why for k, v in VARIANTS.items()}, "jobs": args.jobs,
            "seconds": round(time.time() - t0, 1)}


def messages_built(messages: list[tuple[str, dict]]) -> list[tuple[int, dict]]:
    return [(m["batch_size"], m) for k, m in messages if k == "BUILT"]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: list[dict], keras_name: str = "keras-jax") -> list[str]:
    """Markdown rows; `vs X` = X's step time / this one's (same precision and batch)."""
    def base(name):
        return {(r["precision"], r["batch_size"]): r["median_step_ms"]
                for r in results if r["framework"] == name}

    keras, compiled = base(keras_name), base("torch-compile")
    order = {n: i for i, n in enumerate(("charjax", "keras-jax", "torch", "torch-compile"))}

    def ratio(b, r):
        ms = b.get((r["precision"], r["batch_size"]))
        return f"{ms / r['median_step_ms']:.2f}x" if ms else "-"

    title = "Keras (JAX)" if keras_name == "keras-jax" else "Keras"
    rows = [f"| framework | precision | batch | median ms/step | images/s | vs {title} "
            "| vs torch.compile | first step s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: (r["batch_size"], r["precision"],
                                            order.get(r["framework"], 9), r["framework"])):
        rows.append(f"| {r['framework']} | {r['precision']} | {r['batch_size']} | "
                    f"{r['median_step_ms']:.3f} | {r['images_per_s']:,.0f} | {ratio(keras, r)} | "
                    f"{ratio(compiled, r)} | {_seconds(r.get('first_step_s'))} |")
    return rows
