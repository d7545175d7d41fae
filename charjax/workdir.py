"""A workdir has one writer: the lock `charjax train` holds while it runs.

The lock is an advisory `flock` on WORKDIR/train.lock, which also records who holds it
(process id, host, start time) for the message a second writer sees. The kernel drops
a flock when its process dies, so a lock file left behind by a killed run is stale by
construction: the next run takes it over and says so. `eval` and `predict` only read and
never take the lock.

`claim` also checks, before anything is written, that the workdir can be a workdir at
all (not a file, writable), and on the way out removes what it created itself (the lock
file, and the workdir when the run failed before writing anything into it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator

from charjax.errors import WorkdirError

LOCK_FILE = "train.lock"

log = logging.getLogger(__name__)


def check_usable(workdir: str) -> None:
    """Raises WorkdirError when `workdir` is a file or cannot be written (or created)."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise WorkdirError(f"--workdir {workdir}: is a file, not a folder; pass a new folder "
                           "name (it is created) or an existing run's folder")
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise WorkdirError(f"--workdir {workdir}: {existing} is a file, so the folder cannot be "
                           "created; pick another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created ({existing} is " \
               "not writable)"
        raise WorkdirError(f"--workdir {workdir}: {what}; pick a folder you can write to, or fix "
                           "its permissions")


def _describe(info: dict) -> str:
    since = info.get("since")
    when = time.strftime(" since %H:%M:%S", time.localtime(since)) if since else ""
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}{when}"


def _read_holder(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read() or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class Lock:
    """The held lock of one workdir; `release()` (or leaving `claim`) gives it up."""

    def __init__(self, workdir: str, fd: int, path: str):
        self.workdir, self.fd, self.path = workdir, fd, path

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still locked: no one can take a file we delete
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def acquire(workdir: str) -> Lock:
    """Takes the workdir's lock now or raises WorkdirError naming its holder.

    The workdir must exist. A lock file whose holder died is taken over, with a warning.
    """
    path = os.path.join(workdir, LOCK_FILE)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise WorkdirError(f"--workdir {workdir}: cannot create {path} ({e.strerror}); pick "
                               "a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_holder(path)
            raise WorkdirError(
                f"--workdir {workdir}: in use by another `charjax train` ({_describe(holder)}); "
                "wait for it to finish, or train into another --workdir") from None
        # The file may have been deleted (released) between our open and our flock: retry
        # on the new file, so two writers can never hold two different files.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = _read_holder(path)
    if previous:
        log.warning("%s: taking over the lock left by %s, which is no longer running",
                    workdir, _describe(previous))
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return Lock(workdir, fd, path)


@contextlib.contextmanager
def claim(workdir: str, enabled: bool = True) -> Iterator[Lock | None]:
    """Checks the workdir, creates it if needed and holds its lock for the block.

    A workdir this call created is removed again if it is empty at the end (a run that
    failed before writing anything leaves no trace). `enabled=False` (processes other than
    the first of a multi-host run) only creates the folder.
    """
    check_usable(workdir)
    created = not os.path.isdir(workdir)
    os.makedirs(workdir, exist_ok=True)
    lock = acquire(workdir) if enabled else None
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(workdir)  # only succeeds when empty

