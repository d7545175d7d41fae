"""Sections of benchmarks/RESULTS.md that a benchmark script owns and rewrites.

A script's section sits between its own begin and end markers; rewriting it leaves the rest
of the file (hand-written history, other scripts' sections) as it was.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import re

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"


def write_section(text: str, begin: str, end: str, path: pathlib.Path = RESULTS) -> None:
    """Replaces the section between `begin` and `end` with `text` (or appends it)."""
    old = path.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    path.write_text(new + ("" if new.endswith("\n") else "\n"))


def when_and_where() -> str:
    """The date, machine and load a section's figures were measured at, as one clause."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    busy = ("a quiet machine" if load < cores
            else "the cores were shared: wall times are pessimistic")
    machine = f"{platform.machine()} with {cores} cores"
    return f"{when}, {machine}, load average {load:.1f} at the end ({busy})"
