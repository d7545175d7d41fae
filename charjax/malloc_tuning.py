"""Keep XLA:CPU's per-step buffers in glibc's heap instead of fresh mmaps.

XLA:CPU mallocs its large per-step buffers (tens of MB at batch 128) and frees them
again every step. Above glibc's mmap threshold each one is a new mapping, so every step
pays page faults on every page it touches: about a quarter of a CPU train step here.
Raising the mmap and trim thresholds and keeping one arena (thread arenas map anything
above 64 MB on their own) lets freed buffers be reused warm. `apply()` runs at
`import charjax`, before XLA allocates, so the `charjax` command and library users get
it without setting anything; it changes where memory comes from, never a result.

Costs: up to the trim threshold of freed memory stays with the process. Opt out with
CHARJAX_MALLOC=off; a GLIBC_TUNABLES that sets malloc options also leaves it alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

DISABLE_ENV = "CHARJAX_MALLOC"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
THRESHOLD = 1 << 30  # 1 GiB: above any buffer of a train step at batch 512

_applied: bool | None = None


def apply() -> bool:
    """Sets the thresholds once per process through mallopt; True if they are in force."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(DISABLE_ENV, "").lower() in ("0", "off", "false", "no"):
        return False
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "") or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return False
    ok = all(libc.mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, THRESHOLD), (_M_TRIM_THRESHOLD, THRESHOLD), (_M_ARENA_MAX, 1)))
    _applied = ok
    return ok


def applied() -> bool:
    return bool(_applied)
