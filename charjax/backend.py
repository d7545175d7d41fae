"""How this process drives XLA, decided once at start-up, before the first computation.

- **Compilation cache.** XLA compiles each train-step shape in seconds on a CPU and in
  18-33 s on a GPU (autotuning). Compiled programs are kept on disk in the charjax cache
  folder (`CACHE/xla`, see `charjax.files`), so a second run on the same machine loads them
  instead. Off with `config.compilation_cache=False` or CHARJAX_COMPILATION_CACHE=off. A
  folder set outside charjax (JAX_COMPILATION_CACHE_DIR, `jax.config`) is left as it is.
- **Deterministic GPU ops.** GPU reductions and scatter-adds otherwise sum in a varying
  order, so the same seed gives weights that differ in the 4th decimal. XLA reads
  `--xla_gpu_deterministic_ops` from XLA_FLAGS once, when the backend starts: `configure`
  must run before any JAX computation (the `charjax` command calls it first thing). On a
  CPU the flag changes nothing.
- **Steps per call.** How many train steps one jitted call runs (`steps_per_call`).
- **What was compiled.** `jax.monitoring` reports every XLA compilation and persistent-cache
  hit; `precompile` compiles a run's programs up front and logs how long they took and
  whether they came from the cache; `compiled_programs` lists them (tests count them).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

from charjax import files, validation

log = logging.getLogger(__name__)

CACHE_ENV = "CHARJAX_COMPILATION_CACHE"  # "off" / "0" / "false" / "no": no cache
CACHE_SUBDIR = "xla"
DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops"
# K for `steps_per_call=0` on an accelerator: a step of the tutorial net is launch-bound
# (~1.4 ms on an H200 up to batch 512), so the host's dispatch per call is a real share of
# it; 16 steps per call keep a call near 25 ms, so Ctrl-C and the progress bar still answer
# within a blink, and cost at most 15 masked steps at an epoch's end (1.6 % of the default
# run's 930-step epoch). On XLA:CPU a step loop inside one program measured 14-30x slower.
ACCELERATOR_STEPS_PER_CALL = 16


@dataclasses.dataclass(frozen=True)
class Settings:
    """What `configure` decided for this process."""

    cache_dir: str | None  # the compilation cache's folder; None: no cache
    cache_set_by: str  # "charjax", "outside charjax" or why it is off
    deterministic_requested: bool  # config.deterministic of the first call
    deterministic: bool  # --xla_gpu_deterministic_ops=true is in force for this backend
    deterministic_note: str  # why not, when it was asked for and is not


_settings: Settings | None = None
_lock = threading.Lock()


def _env_off(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("0", "off", "false", "no")


def backend_started() -> bool:
    """Whether XLA's backends exist already (XLA_FLAGS set now would be ignored)."""
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a jax without it: assume the worst
        return True


def with_deterministic_flag(xla_flags: str) -> str:
    """`xla_flags` (an XLA_FLAGS value) with --xla_gpu_deterministic_ops=true added, unless
    it names that flag already (an explicit =false is the user's to keep)."""
    if any(f.split("=")[0] == DETERMINISTIC_FLAG for f in xla_flags.split()):
        return xla_flags
    return f"{xla_flags} {DETERMINISTIC_FLAG}=true".strip()


def deterministic_flag_value(xla_flags: str | None = None) -> bool:
    """Whether XLA_FLAGS (or `xla_flags`) turns deterministic GPU ops on."""
    flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    value = None
    for f in flags.split():
        name, _, v = f.partition("=")
        if name == DETERMINISTIC_FLAG:
            value = v.strip().lower() in ("", "true", "1")
    return bool(value)


def _configure_determinism(wanted: bool) -> tuple[bool, str]:
    started = backend_started()
    if wanted and not started:
        os.environ["XLA_FLAGS"] = with_deterministic_flag(os.environ.get("XLA_FLAGS", ""))
    on = deterministic_flag_value()
    if wanted and not on:
        note = ("XLA started before charjax could set it: put "
                f"{DETERMINISTIC_FLAG}=true in XLA_FLAGS" if started
                else f"XLA_FLAGS sets {DETERMINISTIC_FLAG}=false")
        return False, note
    return on, ""


def cache_decision(wanted: bool, outside: str | None) -> tuple[str | None, str]:
    """(the compilation cache's folder or None, who set it or why it is off) for
    config.compilation_cache=`wanted`, CHARJAX_COMPILATION_CACHE and a folder set `outside`
    charjax (JAX_COMPILATION_CACHE_DIR or jax.config), which is kept."""
    if not wanted:
        return None, "off (config.compilation_cache)"
    if _env_off(CACHE_ENV):
        return None, f"off ({CACHE_ENV}={os.environ[CACHE_ENV]})"
    if outside:
        return outside, "outside charjax"
    return os.fspath(files.cache_dir() / CACHE_SUBDIR), "charjax"


def _configure_cache(wanted: bool) -> tuple[str | None, str]:
    path, set_by = cache_decision(wanted, jax.config.jax_compilation_cache_dir)
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
    elif set_by == "charjax":
        jax.config.update("jax_compilation_cache_dir", path)
        if jax.config.jax_persistent_cache_min_compile_time_secs == 1.0 and (
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ):
            # jax's default keeps only programs that took >= 1 s; a run's small programs
            # (initialisation, epoch order) cost a GPU 0.1-0.5 s each, and load in ms
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path, set_by


def configure(config: Any) -> Settings:
    """Applies config.compilation_cache and config.deterministic to this process, once.

    Call it before any JAX computation (XLA reads XLA_FLAGS when its backend starts) and
    before anything compiles (the cache must be in place). Both are process-wide: the first
    call decides, later ones return what it decided. Starts nothing itself.
    """
    global _settings
    validation.check_backend_fields(config)
    with _lock:
        if _settings is None:
            wanted = bool(config.deterministic)
            deterministic, note = _configure_determinism(wanted)
            cache_dir, set_by = _configure_cache(bool(config.compilation_cache))
            _settings = Settings(cache_dir, set_by, wanted, deterministic, note)
            _watch_compiles()
        elif bool(config.deterministic) != _settings.deterministic_requested:
            log.warning("config.deterministic=%s: this process started with %s, which "
                        "stays; the new value takes effect in a new process",
                        config.deterministic, _settings.deterministic_requested)
        return _settings


def settings() -> Settings | None:
    """What `configure` decided, or None before it ran."""
    return _settings


def describe(backend: str | None = None) -> str:
    """'deterministic GPU ops: on' (or off and why), for the run's backend line."""
    backend = backend or jax.default_backend()
    s = _settings
    on = s.deterministic if s is not None else deterministic_flag_value()
    text = f"deterministic GPU ops: {'on' if on else 'off'}"
    if s is not None and s.deterministic_note:
        text += f" ({s.deterministic_note})"
    elif backend == "cpu":
        text += " (no effect on a CPU)"
    return text


def describe_cache() -> str:
    """'cache DIR' (or why there is none), for the run's log."""
    s = _settings
    if s is None:
        where = jax.config.jax_compilation_cache_dir
        return f"cache {where}" if where else "no compilation cache"
    if s.cache_dir is None:
        return f"compilation cache {s.cache_set_by}"
    return f"cache {s.cache_dir}"


def steps_per_call(configured: int, steps_per_epoch: int, backend: str | None = None) -> int:
    """Train steps per jitted call: `configured` when > 0, else 1 on a CPU and
    ACCELERATOR_STEPS_PER_CALL elsewhere; never more than an epoch's steps."""
    backend = backend or jax.default_backend()
    k = configured if configured > 0 else (1 if backend == "cpu" else ACCELERATOR_STEPS_PER_CALL)
    return max(1, min(k, steps_per_epoch))


# ----------------------------------------------------------------------- compile records


@dataclasses.dataclass(frozen=True)
class Compiled:
    """One XLA compilation this process asked for."""

    name: str  # jax's name for the program, e.g. 'jit(step)'
    seconds: float  # XLA's compile time, or the time to load it from the cache
    from_cache: bool  # loaded from the persistent compilation cache


_records: list[Compiled] = []
_pending_hit = threading.local()
_watching = False

_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _on_event(event: str, **kwargs: Any) -> None:
    if event == _HIT_EVENT:  # recorded just before the compile event it belongs to
        _pending_hit.value = True


def _on_duration(event: str, seconds: float, **kwargs: Any) -> None:
    if event == _COMPILE_EVENT:
        hit = getattr(_pending_hit, "value", False)
        _pending_hit.value = False
        _records.append(Compiled(str(kwargs.get("fun_name", "?")), float(seconds), hit))


def _watch_compiles() -> None:
    """Starts recording compilations (once per process)."""
    global _watching
    if _watching:
        return
    jax.monitoring.register_event_listener(_on_event)
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    _watching = True


def compiled_programs() -> list[Compiled]:
    """Every compilation since recording started (`configure` or `precompile`)."""
    _watch_compiles()
    return list(_records)


def precompile(programs: Sequence[tuple[str, Callable, tuple]], note: str = "") -> list[str]:
    """Compiles each (label, jitted function, example arguments) now, ahead of its first
    call, and logs one line: how long each took and whether it came from the cache.

    The jitted functions keep the executables, so their first calls start at once and the
    first epoch's timing is the training's alone. A callable without `.lower` (a wrapper)
    is left to compile on its first call. `note` ends the line. Returns its parts.
    """
    _watch_compiles()
    parts, total = [], 0.0
    for label, fn, args in programs:
        lower = getattr(fn, "lower", None)
        if lower is None:
            continue
        first = len(_records)
        start = time.perf_counter()
        lower(*args).compile()
        seconds = time.perf_counter() - start
        total += seconds
        new = _records[first:]
        how = (" (from cache)" if new and all(r.from_cache for r in new)
               else "" if new else " (compiled before)")
        parts.append(f"{label} in {seconds:.1f} s{how}")
    if parts:
        log.info("compiled %s%s", ", ".join(parts), f"; {note}" if note else "")
    return parts
