"""Files charjax writes: atomically (a reader never sees half a file), and its cache folder.

Every JSON, text or array file is written to a temporary file in the same folder and
renamed over the target, so an interrupted write leaves the old file (or none), never a
truncated one.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from collections.abc import Iterator

CACHE_ENV = "CHARJAX_CACHE"


def cache_dir(configured: str | os.PathLike | None = None) -> pathlib.Path:
    """Where generated and decoded datasets are cached: `configured` (config.data.cache_dir)
    when set, else $CHARJAX_CACHE, else ~/.cache/charjax."""
    where = os.fspath(configured) if configured else os.environ.get(CACHE_ENV, "")
    if not where:
        where = os.path.join("~", ".cache", "charjax")
    return pathlib.Path(where).expanduser()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends
    without an error, removed when it raises. `suffix` keeps writers that append their own
    extension (numpy's .npz) from missing the file."""
    path = os.fspath(path)
    # Named rather than mkstemp'd, so the file gets the usual permissions, not 0600.
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
