"""Files a loader left out, and why: the record that makes `skip_bad` never a silent drop."""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

from charjax import files

SKIPPED_FILE = "skipped_files.txt"
# What happened to a file: `bad` ones stop a load unless data.skip_bad is set; `duplicate`
# copies and `ignored` non-image files are always left out, with a warning.
KINDS = ("bad", "duplicate", "ignored")

_log = logging.getLogger("charjax.datasets")


class Skipped(NamedTuple):
    """One file left out of a dataset: its path, `kind` (see KINDS) and the reason."""

    path: str
    kind: str
    reason: str


def summarize(skipped: list[Skipped], source: str, show: int = 5) -> None:
    """One warning per kind with the count and the first few files, so nothing drops quietly."""
    for kind in KINDS:
        items = [s for s in skipped if s.kind == kind]
        if not items:
            continue
        shown = "; ".join(f"{s.path}: {s.reason}" for s in items[:show])
        more = f"; and {len(items) - show} more" if len(items) > show else ""
        _log.warning("%s: left out %d %s file(s): %s%s", source, len(items), kind, shown, more)


def write(skipped: list[Skipped], workdir: str | os.PathLike) -> str | None:
    """Writes WORKDIR/skipped_files.txt (kind, path, reason; tab-separated); None if nothing."""
    if not skipped:
        return None
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(os.fspath(workdir), SKIPPED_FILE)
    lines = ["# kind\tpath\treason"] + [f"{s.kind}\t{s.path}\t{s.reason}" for s in skipped]
    files.write_text(path, "\n".join(lines) + "\n")
    return path
