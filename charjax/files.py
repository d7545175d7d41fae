"""Files charjax writes: atomically (a reader never sees half a file), never over a user's
file unless asked, and its cache folder.

Every JSON, text or array file is written to a temporary file in the same folder and
renamed over the target, so an interrupted write leaves the old file (or none), never a
truncated one. Paths a user names for output (`--json`, `--show`, `--out`) are checked
before any work (`output_file_problem`, `output_folder_problem`): an existing file is
overwritten only with `--force`, and a path problem reads in plain words ("is a folder",
"cannot be created under a file").
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import secrets
from collections.abc import Iterable, Iterator

from charjax.errors import OutputError

CACHE_ENV = "CHARJAX_CACHE"


def cache_dir(configured: str | os.PathLike | None = None) -> pathlib.Path:
    """Where generated and decoded datasets are cached: `configured` (config.data.cache_dir)
    when set, else $CHARJAX_CACHE, else ~/.cache/charjax."""
    where = os.fspath(configured) if configured else os.environ.get(CACHE_ENV, "")
    if not where:
        where = os.path.join("~", ".cache", "charjax")
    return pathlib.Path(where).expanduser()


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = ".tmp", overwrite: bool = True
) -> Iterator[str]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends
    without an error, removed when it raises. `suffix` keeps writers that append their own
    extension (numpy's .npz) from missing the file. `overwrite=False` never replaces a file
    that exists by then (it raises OutputError): the file is linked into place, which fails
    rather than replaces."""
    path = os.fspath(path)
    # Named rather than mkstemp'd, so the file gets the usual permissions, not 0600.
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _place_new(tmp: str, path: str) -> None:
    """Moves `tmp` to `path` unless `path` exists (checked and done in one step where the
    file system has hard links)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{path}: already exists (it appeared while charjax was writing); "
                          "it was left as it was; pass --force to overwrite it") from None
    except OSError:  # no hard links here (some network and FAT file systems)
        if os.path.lexists(path):
            raise OutputError(f"{path}: already exists; it was left as it was; pass --force "
                              "to overwrite it") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Writes `text` (UTF-8) to `path` atomically (never over a file with overwrite=False)."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    """Writes `data` to `path` atomically (never over a file with overwrite=False)."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        f.write(data)


# ------------------------------------------------------------------ user-named output paths


def file_in_the_way(path: str | os.PathLike) -> str | None:
    """The nearest existing ancestor of `path` (or `path` itself) when it is not a folder:
    the file that keeps `path` from being created. None when nothing is in the way."""
    current = os.path.abspath(os.fspath(path))
    while True:
        if os.path.lexists(current):
            return None if os.path.isdir(current) else current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def output_file_problem(path: str, force: bool = False, example: str = "out.json") -> str | None:
    """Why `path` cannot be written as a new file, in plain words with the fix, or None.

    An existing file is a problem unless `force`: charjax never overwrites a file the user
    did not ask it to.
    """
    if os.path.isdir(path):
        return f"is a folder; name a file in it, e.g. {os.path.join(path, example)}"
    folder = os.path.dirname(os.path.abspath(path))
    blocker = file_in_the_way(folder)
    if blocker:
        return f"cannot be created under a file ({blocker} is a file); pick another path"
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist; create it first or pick another path"
    if os.path.lexists(path) and not os.path.isfile(path):
        return "is not a regular file (a link to nothing, a socket or a device); pick another path"
    if os.path.exists(path) and not force:
        return "already exists; pass --force to overwrite it, or pick another path"
    if not os.access(folder, os.W_OK | os.X_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)):
        return "cannot write there (permission denied); pick another path"
    return None


def output_folder_problem(
    path: str, names: Iterable[str] = (), force: bool = False
) -> str | None:
    """Why files `names` cannot be written into folder `path` (created if missing), in plain
    words with the fix, or None. Files of those names already there are a problem unless
    `force`."""
    if os.path.lexists(path) and not os.path.isdir(path):
        return "is a file; name a folder (it is created if missing)"
    blocker = file_in_the_way(path)
    if blocker:
        return f"cannot be created under a file ({blocker} is a file); pick another folder"
    existing = _nearest_existing(path)
    if not os.access(existing, os.W_OK | os.X_OK):
        return "cannot write there (permission denied); pick another folder"
    if os.path.isdir(path) and not force:
        taken = [n for n in names if os.path.lexists(os.path.join(path, n))]
        if taken:
            more = f" and {len(taken) - 1} more of the files it would write" if len(taken) > 1 \
                else ""
            return (f"already holds {taken[0]}{more}; pass --force to overwrite them, or pick "
                    "another folder")
    return None


def describe_os_error(error: OSError) -> str:
    """An OSError as one plain line naming the path, what is wrong and what to do."""
    name = error.filename if error.filename is not None else ""
    where = f"{os.fspath(name)}: " if name != "" else ""
    code = error.errno
    if code == errno.EISDIR:
        return f"{where}is a folder, not a file; name a file"
    if code == errno.ENOTDIR:
        blocker = file_in_the_way(name) if name != "" else None
        what = f" ({blocker} is a file)" if blocker else ""
        return f"{where}cannot be created under a file{what}; pick another path"
    if code == errno.EEXIST:
        kind = "a file" if name != "" and os.path.isfile(name) else "something"
        return f"{where}is {kind} already, not a folder; pick another path"
    if code in (errno.EACCES, errno.EPERM):
        return f"{where}permission denied; pick another path or fix its permissions"
    if code == errno.ENOENT:
        return f"{where}no such file or folder"
    if code == errno.ENOSPC:
        return f"{where}no space left on the disk; free some, then rerun"
    if code == errno.EROFS:
        return f"{where}the file system is read-only; pick another path"
    return f"{where}{error.strerror or error}; check the disk and the permissions there, then rerun"
