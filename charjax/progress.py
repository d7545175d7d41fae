"""Progress of long loops: a redrawn bar on a terminal, a plain log line elsewhere.

A training epoch or a data preparation can run for minutes with nothing to show. On a
terminal a one-line bar is redrawn in place (carriage return, ANSI clear-line). Anywhere
else (a CI log, a file, a pipe) those control characters would turn into garbage, so the
same calls log a plain line through `logging` every few seconds instead, and a short loop
logs nothing at all.

    with Progress(total=steps, desc="epoch 3") as bar:
        for i in range(steps):
            ...
            bar.update(1, loss=0.31)

    for path in track(paths, desc="reading images"):
        ...

The mode is "auto" (bar when the stream is a terminal and TERM is not "dumb", else plain),
"bar", "plain" or "off"; the environment variable CHARJAX_PROGRESS overrides "auto".

Progress only counts what it is told. Under JAX's asynchronous dispatch a step loop runs
ahead of the device, so the bar is exact only at the points where the caller waits on a
result (for example where it fetches metrics once per log period).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

MODES = ("auto", "bar", "plain", "off")
ENV_VAR = "CHARJAX_PROGRESS"
BAR_REFRESH_S = 0.1  # redraw a terminal bar at most this often
PLAIN_INTERVAL_S = 10.0  # log a plain line at most this often (and not before)
_CLEAR_LINE = "\r\x1b[K"

log = logging.getLogger(__name__)
T = TypeVar("T")

_active_bars: list[Progress] = []  # a second bar on the same line would garble both


def resolve_mode(mode: str, stream: TextIO) -> str:
    """The concrete mode ('bar', 'plain' or 'off') for `mode` on `stream`."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        mode = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
        if mode not in MODES:
            raise ValueError(f"{ENV_VAR} must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        mode = "bar" if is_terminal(stream) else "plain"
    return mode


def is_terminal(stream: TextIO) -> bool:
    """True when `stream` is an interactive terminal that understands cursor control."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return bool(tty) and os.environ.get("TERM", "") != "dumb"


def format_duration(seconds: float) -> str:
    """'0:07', '12:05' or '1:02:03': short and sortable by eye."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_value(value: object) -> str:
    """Metrics read best with four significant digits; anything else as str()."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class _ClearBarFilter(logging.Filter):
    """Wipes the bar before a log record reaches the bar's stream, so the two don't mix.

    Attached to handlers that write to the bar's stream while the bar is shown; the bar
    is redrawn on its next update.
    """

    def __init__(self, bar: Progress):
        super().__init__()
        self._bar = bar

    def filter(self, record: logging.LogRecord) -> bool:
        self._bar._clear()
        return True


class Progress:
    """Counts work done towards `total` (None when unknown) and shows it.

    Use it as a context manager, or call `close()`; closing wipes a terminal bar (the
    caller usually logs a summary line next) and logs nothing in plain mode.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        *,
        unit: str = "it",
        mode: str = "auto",
        stream: TextIO | None = None,
        interval: float | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = total if total is None else max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.count = 0
        self.info: dict[str, object] = {}
        self._stream = sys.stderr if stream is None else stream
        self._logger = logger or log
        self._clock = clock
        self.mode = resolve_mode(mode, self._stream)
        if self.mode == "bar" and _active_bars:
            self.mode = "plain"  # nested bars: the outer one owns the line
        default_interval = BAR_REFRESH_S if self.mode == "bar" else PLAIN_INTERVAL_S
        self.interval = default_interval if interval is None else float(interval)
        self._start = self._last_shown = clock()
        self._drawn = False
        self._closed = False
        self._guarded: list[logging.Handler] = []
        self._filter = _ClearBarFilter(self)
        if self.mode == "bar":
            _active_bars.append(self)
            self._guard_log_handlers()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, n: int = 1, **info: object) -> None:
        """Adds `n` to the count; keyword values (e.g. loss=0.3) are shown beside it."""
        if self._closed:
            return
        self.count += n
        self.info.update(info)
        now = self._clock()
        if self.mode == "bar":
            if not self._drawn or now - self._last_shown >= self.interval or self._done():
                self._draw(now)
        elif self.mode == "plain" and now - self._last_shown >= self.interval:
            self._logger.info("%s", self.plain_line(now))
            self._last_shown = now

    def close(self) -> None:
        """Wipes a terminal bar and stops watching log handlers; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._clear()
            for handler in self._guarded:
                handler.removeFilter(self._filter)
            self._guarded.clear()
            if self in _active_bars:
                _active_bars.remove(self)

    def plain_line(self, now: float | None = None) -> str:
        """'desc: 420/1000 (42%), 35.0 it/s, 0:12 elapsed, ETA 0:16, loss 0.31'."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        parts = [f"{self.count}/{self.total} ({self._fraction():.0%})" if self.total
                 else f"{self.count} {self.unit}"]
        parts.append(f"{rate:.1f} {self.unit}/s")
        parts.append(f"{format_duration(elapsed)} elapsed")
        if self.total:
            parts.append(f"ETA {format_duration(self._eta(rate))}")
        parts += [f"{k} {_format_value(v)}" for k, v in self.info.items()]
        prefix = f"{self.desc}: " if self.desc else ""
        return prefix + ", ".join(parts)

    def bar_line(self, width: int, now: float | None = None) -> str:
        """'desc  42%[=====>     ] 420/1000 [0:12<0:16, 35.0 it/s] loss 0.31', cut to `width`."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        info = " ".join(f"{k} {_format_value(v)}" for k, v in self.info.items())
        if self.total:
            stats = (f" {self.count}/{self.total} [{format_duration(elapsed)}<"
                     f"{format_duration(self._eta(rate))}, {rate:.1f} {self.unit}/s]")
            head = f"{self.desc} {self._fraction():4.0%}"
            room = width - len(head) - len(stats) - len(info) - 3
            bar = _bar(self._fraction(), max(min(room, 40), 10))
            line = f"{head}{bar}{stats} {info}"
        else:
            line = (f"{self.desc} {self.count} {self.unit} [{format_duration(elapsed)}, "
                    f"{rate:.1f} {self.unit}/s] {info}")
        return line.rstrip()[: max(width, 1)]

    def _fraction(self) -> float:
        return min(self.count / self.total, 1.0) if self.total else 0.0

    def _done(self) -> bool:
        return bool(self.total) and self.count >= self.total

    def _eta(self, rate: float) -> float:
        remaining = max((self.total or 0) - self.count, 0)
        return remaining / rate if rate > 0 else float("inf")

    def _draw(self, now: float) -> None:
        # One column short of the terminal width: a line that wraps can't be redrawn by \r.
        width = shutil.get_terminal_size(fallback=(80, 24)).columns - 1
        self._stream.write(_CLEAR_LINE + self.bar_line(width, now))
        self._stream.flush()
        self._drawn = True
        self._last_shown = now

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write(_CLEAR_LINE)
            self._stream.flush()
            self._drawn = False

    def _guard_log_handlers(self) -> None:
        """Adds the clear-the-bar filter to every handler that writes to our stream."""
        seen: set[int] = set()
        logger: logging.Logger | None = self._logger
        loggers = [logging.getLogger("charjax"), logging.getLogger()]
        while logger is not None:  # the progress logger and its ancestors
            loggers.append(logger)
            logger = logger.parent if logger.propagate else None
        for each in loggers:
            for handler in each.handlers:
                if id(handler) in seen or getattr(handler, "stream", None) is not self._stream:
                    continue
                seen.add(id(handler))
                handler.addFilter(self._filter)
                self._guarded.append(handler)


def _bar(fraction: float, width: int) -> str:
    """'[=====>    ]' of `width` characters in all."""
    inner = width - 2
    filled = int(fraction * inner)
    arrow = ">" if filled < inner else ""
    return "[" + ("=" * filled + arrow).ljust(inner) + "]"


def track(
    iterable: Iterable[T],
    desc: str = "",
    total: int | None = None,
    **kwargs: object,
) -> Iterator[T]:
    """Yields from `iterable`, counting one unit per item (see `Progress` for kwargs).

    `total` defaults to len(iterable) when it has one.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(total, desc, **kwargs) as progress:  # type: ignore[arg-type]
        for item in iterable:
            yield item
            progress.update(1)
