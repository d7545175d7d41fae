"""oneDNN convolution blocks inside the jitted CPU step, through XLA's typed FFI.

XLA:CPU has no bf16 convolution and its float32 convolution gradients are slower than
oneDNN's on x86-64, so each conv-pool block of the tutorial network is one oneDNN FFI
call forward (convolution, bias, ReLU and 2x2 max-pool on cache-sized batch chunks) and
one backward (unpooling, bias sum, input and kernel gradients, chunk by chunk), and XLA
keeps everything around them (dense layers, loss, Adam). The C++ source beside this
file is compiled on first use with the machine's g++ against the `onednn-cpu-gomp`
wheel's headers and library, into the charjax cache ($CHARJAX_CACHE or
~/.cache/charjax), keyed by a hash of everything the binary depends on.

`status()` says whether the kernels can be used and, if not, why: no compiler, not
x86-64 Linux, oneDNN not installed, a failed build or load, or CHARJAX_KERNELS=off.
`select()` is where a process decides, once, at its entry point (training, a loaded
recognizer, export), which conv-pool kernels a model is built with; models never build
or load C++ themselves.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Callable

from charjax import files

log = logging.getLogger(__name__)

SOURCE = pathlib.Path(__file__).with_name("onednn_conv.cc")
DISABLE_ENV = "CHARJAX_KERNELS"  # "off" / "0" / "false": never load them
_LIBRARY = "libdnnl.so.3"
_FLAGS = ("-O3", "-fPIC", "-shared", "-std=c++17", "-fopenmp", "-w")
TARGETS = {
    "charjax_onednn_block_fwd": "CharjaxBlockForward",
    "charjax_onednn_block_bwd": "CharjaxBlockBackward",
    "charjax_onednn_block_bwd_weights": "CharjaxBlockBackwardWeights",
}


_registered: ctypes.CDLL | None = None  # the library whose FFI targets XLA holds


@dataclasses.dataclass(frozen=True)
class Status:
    """Whether the oneDNN kernels are loaded; `detail` is their version or the reason not."""

    available: bool
    detail: str


def _onednn_prefix() -> pathlib.Path | None:
    """The install prefix holding oneDNN's headers and library (wheel data lands there)."""
    prefixes = [sys.prefix, sys.base_prefix, site.getuserbase()]
    for prefix in dict.fromkeys(pathlib.Path(p) for p in prefixes):
        if (prefix / "include" / "oneapi" / "dnnl" / "dnnl.hpp").exists() and (
            prefix / "lib" / _LIBRARY
        ).exists():
            return prefix
    return None


def cache_dir() -> pathlib.Path:
    return files.cache_dir() / "kernels"


def _build(prefix: pathlib.Path, compiler: str, defines: tuple[str, ...] = ()) -> pathlib.Path:
    """Compiles the FFI library once per (source, jaxlib, oneDNN, compiler, `defines`: -D
    flags, e.g. a benchmark's extra targets); returns its path."""
    import jax
    import jaxlib

    include = jax.ffi.include_dir()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             check=True).stdout.splitlines()[0]
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(_FLAGS + defines).encode(),
                 jaxlib.__version__.encode(), str(prefix).encode(),
                 (prefix / "lib" / _LIBRARY).resolve().name.encode(), version.encode()):
        digest.update(part)
    out = cache_dir() / digest.hexdigest()[:16] / "libcharjax_onednn.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".so", delete=False) as tmp:
        pass
    cmd = [compiler, *_FLAGS, *defines, str(SOURCE),
           f"-I{include}", f"-I{prefix / 'include'}", f"-L{prefix / 'lib'}", "-l:" + _LIBRARY,
           f"-Wl,-rpath,{prefix / 'lib'}", "-o", tmp.name]
    log.info("building the oneDNN kernels (once): %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp.name)
        raise RuntimeError(f"{compiler} failed: {proc.stderr.strip()[-500:]}")
    os.replace(tmp.name, out)  # atomic: concurrent first uses never see half a file
    return out


def _load() -> Status:
    if os.environ.get(DISABLE_ENV, "").lower() in ("0", "off", "false", "no"):
        return Status(False, f"disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return Status(False, f"no oneDNN build for {sys.platform}/{platform.machine()}")
    prefix = _onednn_prefix()
    if prefix is None:
        return Status(False, "oneDNN is not installed (pip install onednn-devel-cpu-gomp)")
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        return Status(False, "no C++ compiler (g++ or $CXX) to build them")
    import jax

    global _registered
    try:
        # XLA keeps FFI targets for the life of the process: once registered, the same
        # library serves every later status() (a second build elsewhere, e.g. under
        # another CHARJAX_CACHE, would be refused as a duplicate registration)
        lib = _registered or ctypes.cdll.LoadLibrary(str(_build(prefix, compiler)))
        if _registered is None:
            for name, symbol in TARGETS.items():
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)),
                                            platform="cpu")
            _registered = lib
        v = lib.charjax_onednn_version()
        threads = threads_per_call()
        lib.charjax_onednn_set_threads(threads)
    except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as err:
        return Status(False, f"oneDNN kernels failed to build or load: {err}")
    return Status(True, f"oneDNN {v // 10000}.{v // 100 % 100}.{v % 100} convolutions, "
                        f"{threads} thread(s) per call")


def threads_per_call() -> int:
    """This process's cores shared among its XLA CPU devices: one device (the usual
    case) gets them all; a simulated multi-device mesh runs its devices' steps side by
    side, and more threads than cores would leave OpenMP teams waiting on each other."""
    import jax

    cores = len(os.sched_getaffinity(0))
    return max(1, cores // max(1, len(jax.local_devices(backend="cpu"))))


@functools.cache
def status() -> Status:
    """Loads the kernels once per process (building them on first use)."""
    return _load()


def available() -> bool:
    return status().available


def supports(dtype: str) -> bool:
    """Whether this CPU's oneDNN runs the tutorial's conv-pool blocks in `dtype`.

    float32 runs wherever the kernels load. oneDNN builds bf16 convolutions only for
    CPUs with AVX-512 (or AMX); elsewhere creating the primitive fails at run time, so
    bf16 is probed once, on the tutorial's two block shapes with one image each.
    """
    return available() and (dtype == "float32" or _runs_in(dtype))


@functools.cache
def _runs_in(dtype: str) -> bool:
    import jax
    import jax.numpy as jnp

    from charjax import layers

    jdtype = jnp.dtype(jnp.bfloat16 if dtype == "bf16" else dtype)
    try:
        blocks = (((1, 48, 48, 1), (5, 5, 1, 32)), ((1, 22, 22, 32), (3, 3, 32, 64)))
        for x_shape, k_shape in blocks:
            x, k = jnp.ones(x_shape, jdtype), jnp.ones(k_shape, jdtype)
            jax.block_until_ready(
                jax.jit(layers.onednn_conv_relu_pool)(x, k, jnp.zeros(k_shape[-1:], jdtype)))
    except jax.errors.JaxRuntimeError as err:
        log.info("oneDNN has no %s convolution on this CPU (%s)", dtype, str(err)[:200])
        return False
    return True


# config.model.impl: "auto" picks for the backend; the others ask for one formulation.
IMPLS = ("auto", "onednn", "fast", "flax")


@dataclasses.dataclass(frozen=True)
class Choice:
    """The conv-pool kernels a model is built with, and the line the run's log shows."""

    impl: str  # "onednn", "fast" or "flax"
    conv_block: Callable | None  # conv + bias + ReLU + 2x2 max-pool; None: plain Flax layers
    description: str


def select(impl: str = "auto", backend: str | None = None, precision: str = "float32") -> Choice:
    """The tutorial network's conv-pool kernels for this process.

    "auto" is oneDNN on a CPU where charjax.kernels load and run in `precision`, XLA's
    fast path (charjax.layers) on other CPUs, and plain Flax layers on accelerators (cuDNN
    needs none of the CPU rewrites). "onednn" where the kernels cannot serve raises a
    RuntimeError saying why; "fast" and "flax" are always available (export asks for
    "flax": no custom call in the exported program).
    """
    import jax

    from charjax import layers

    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; choose one of {IMPLS}")
    backend = backend or jax.default_backend()
    chosen, note = impl, ""
    if impl == "auto":
        chosen = "flax" if backend != "cpu" else "onednn" if supports(precision) else "fast"
        if backend == "cpu" and chosen == "fast":
            note = (f"; oneDNN kernels unavailable: {status().detail}" if not available()
                    else f"; this CPU's oneDNN has no {precision} convolution")
    elif impl == "onednn" and not available():
        raise RuntimeError(f"model.impl='onednn' but {status().detail}")
    elif impl == "onednn" and not supports(precision):
        raise RuntimeError(f"model.impl='onednn' but this CPU's oneDNN has no {precision} "
                           "convolution (it needs AVX-512); use model.impl='auto' or 'fast'")
    block, kind = {
        "onednn": (layers.onednn_conv_relu_pool, status().detail if chosen == "onednn" else ""),
        "fast": (layers.conv_relu_pool, "XLA convolutions (charjax.layers fast path)"),
        "flax": (None, "XLA convolutions (plain Flax layers)"),
    }[chosen]
    return Choice(chosen, block, f"backend {backend}, model kernels: {kind}{note}")
