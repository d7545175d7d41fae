"""Ctrl-C and SIGTERM during training: stop between steps, never in the middle of XLA.

A KeyboardInterrupt raised wherever Python happens to be lets the interpreter shut down
while XLA's compute threads still run queued steps and Orbax's threads still write a
checkpoint; the process then dies in an Eigen thread (SIGSEGV). Inside `deferred()` a
signal only sets a flag. The train loop calls `raise_if_requested()` between steps, waits
for the steps already queued, lets Orbax finish the checkpoint it is writing, and the CLI
exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM). A second signal
while that happens ends the process at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from charjax.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger(__name__)
_requested: int | None = None


def _message(signum: int) -> str:
    return (f"interrupted ({signal.Signals(signum).name}); the last finished checkpoint is "
            "kept: rerun the same command to resume")


def requested() -> int | None:
    """The signal that asked the run to stop, or None."""
    return _requested


def raise_if_requested() -> None:
    """Raises Interrupted when a signal arrived; call it where stopping is safe."""
    if _requested is not None:
        raise Interrupted(_requested, _message(_requested))


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is not None:  # a second signal: the user does not want to wait
        sys.stderr.write(f"\n{signal.Signals(signum).name} again: stopping now, without waiting "
                         "for the checkpoint in progress (the previous one is kept)\n")
        sys.stderr.flush()
        os._exit(128 + signum)
    _requested = signum
    log.warning("%s: stopping after the current step and the checkpoint being written "
                "(press Ctrl-C again to stop at once)", signal.Signals(signum).name)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM only request a stop (see the module docstring).

    Outside the main thread (where signals cannot be caught) it does nothing.
    """
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _requested = None
    for s in SIGNALS:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        pending, _requested = _requested, None
        if pending is not None and sys.exc_info()[0] is None:
            raise Interrupted(pending, _message(pending))


def _raise_at_once(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum, _message(signum))


def terminate_like_interrupt() -> None:
    """SIGTERM outside `deferred()` unwinds like Ctrl-C (finally blocks run, exit 143)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_at_once)
