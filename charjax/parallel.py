"""Worker processes for CPU-bound work cut into independent tasks (drawing the synthetic set).

How many: `count(requested, tasks)`. `requested` 0 means every core this process may use
(its CPU affinity, so a container's or taskset's limit is honoured); CHARJAX_WORKERS=N caps
that and an explicit request alike (the smaller wins). One worker means no processes at
all: the tasks run here, in order, as a plain loop.

With more, this process is one of the workers: it starts the others, prepares what they
need while they start, then claims tasks from the same shared counter as they do. A job
never waits on a slow start (a small one may be done here before they are up; they are then
stopped), and a worker that dies leaves its tasks to this process. The others are started
with `spawn`: a fresh interpreter that inherits nothing, safe however many threads JAX or
XLA already run here (`fork` is not), paying only its own imports (numpy and Pillow, ~0.4 s
of CPU), which overlap this process's own preparation (`setup`) or work.
Like any `spawn`, it imports the main module again: a script that calls this needs the
`if __name__ == "__main__":` guard (without it the workers stop at start-up and this process
does every task). The tasks travel with `setup`'s payload, from a thread, not in the started
process object: a worker that dies before reading a large object would otherwise block
`start()` for good, since the parent holds the pipe's other end. Each task's result must
depend on the task alone; then which process runs it changes nothing.
"""

from __future__ import annotations

import logging
import multiprocessing
import operator
import os
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from charjax.errors import ConfigError

ENV = "CHARJAX_WORKERS"
START_METHOD = "spawn"
_POLL_S = 0.2  # how often a wait for results checks that the workers are alive

_log = logging.getLogger(__name__)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def env_cap() -> int | None:
    """CHARJAX_WORKERS as a number, or None when unset; a bad value is a ConfigError."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{ENV}={raw!r}: must be a whole number of worker processes, at least 1; "
            f"unset it to use every core this process may use ({cores()})"
        )
    return value


def count(requested: int, tasks: int | None = None) -> int:
    """The number of workers: `requested`, or every core for 0; at most CHARJAX_WORKERS
    (which caps an explicit request too) and at most `tasks`; at least 1."""
    try:
        number = -1 if isinstance(requested, bool) else operator.index(requested)  # numpy's too
    except TypeError:
        number = -1
    if number < 0:
        raise ValueError(f"workers must be 0 (every core) or a positive integer, got {requested!r}")
    workers = number or cores()
    cap = env_cap()
    if cap is not None:
        workers = min(workers, cap)
    if tasks is not None:
        workers = min(workers, tasks)
    return max(workers, 1)


def run(
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    workers: int,
    initializer: Callable[..., Any] | None = None,
    setup: Callable[[], tuple] | None = None,
    here: bool = True,
) -> Iterator[tuple[int, Any]]:
    """Yields (index, fn(*tasks[index])) for every task, in the order they finish.

    With `workers` > 1, `setup()` runs here once the other workers are starting and returns
    the arguments each of them passes to `initializer` before its first task (state this
    process builds anyway, so they need not build it again). `fn`, `tasks`, `initializer`
    and those arguments must pickle. `here=False` leaves every task to started workers
    (unless they all die).
    """
    if workers <= 1 or len(tasks) <= 1 or multiprocessing.current_process().daemon:
        # (A daemonic process, such as a pool's worker, may not start processes of its own.)
        for index, args in enumerate(tasks):
            yield index, fn(*args)
        return
    context = multiprocessing.get_context(START_METHOD)
    claimed = context.Value("q", 0)  # the next task nobody has taken
    results = context.Queue()
    pipes = [context.Pipe(duplex=False) for _ in range(workers - 1 if here else workers)]
    started = [
        context.Process(
            target=_work,
            args=(fn, len(tasks), initializer, receiver, claimed, results),
            name=f"charjax-worker-{i + 1}",
            daemon=True,
        )
        for i, (receiver, _) in enumerate(pipes)
    ]
    done = [False] * len(tasks)
    launched: list[multiprocessing.process.BaseProcess] = []
    senders: list[threading.Thread] = []
    try:
        for process, (receiver, _) in zip(started, pipes, strict=True):
            process.start()
            launched.append(process)
            receiver.close()  # the worker's end: a worker that dies then breaks the pipe
        payload = pickle.dumps((tasks, setup() if setup else ()),
                               protocol=pickle.HIGHEST_PROTOCOL)
        # Sent from threads, so this process starts working while the workers still start.
        senders = [
            threading.Thread(target=_send, args=(sender, payload), daemon=True)
            for _, sender in pipes
        ]
        for thread in senders:
            thread.start()
        while here:
            index = _claim(claimed)
            if index >= len(tasks):
                break
            yield index, fn(*tasks[index])
            done[index] = True
            for index, value in _received(results, block=False):
                done[index] = True
                yield index, value
        while not all(done):
            got = False
            for index, value in _received(results, block=True):
                got = done[index] = True
                yield index, value
            if not got and all(p.exitcode is not None for p in started):
                # Nothing more will come: draw what the workers left undone here.
                failed = [f"{p.name} (exit code {p.exitcode})" for p in started if p.exitcode]
                if failed:
                    _log.warning("worker process(es) %s stopped; finishing their tasks here",
                                 ", ".join(failed))
                for index in [i for i, finished in enumerate(done) if not finished]:
                    yield index, fn(*tasks[index])
                    done[index] = True
    finally:
        # Every result is in (or the caller gave up): a worker still starting, or still
        # working after an error here, has nothing left to give.
        for process in launched:
            if process.is_alive():
                process.terminate()
        for process in launched:
            process.join()
        for thread in senders:
            thread.join()  # sent, or the pipe broke when its worker ended
        results.close()
        results.cancel_join_thread()


def _send(sender: Any, payload: bytes) -> None:
    try:
        sender.send_bytes(payload)
    except OSError:  # the worker ended before reading it (BrokenPipeError)
        pass
    finally:
        sender.close()


def _claim(claimed: Any) -> int:
    with claimed.get_lock():
        index = claimed.value
        claimed.value = index + 1
    return index


def _received(results: Any, block: bool) -> Iterator[tuple[int, Any]]:
    """The results waiting in the queue; with `block`, waits up to _POLL_S for the first."""
    while True:
        try:
            item = results.get(timeout=_POLL_S) if block else results.get_nowait()
        except queue.Empty:
            return
        index, ok, value = item
        if not ok:
            raise RuntimeError(f"worker process failed on task {index}:\n{value}")
        yield index, value
        block = False


def _work(
    fn: Callable[..., Any],
    num_tasks: int,
    initializer: Callable[..., Any] | None,
    receiver: Any,
    claimed: Any,
    results: Any,
) -> None:
    """A started worker: take the parent's state, then claim, run and send back tasks until
    none is left."""
    # Ctrl-C reaches the whole process group: the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tasks, initargs = pickle.loads(receiver.recv_bytes())
    receiver.close()
    if initializer is not None:
        initializer(*initargs)
    while True:
        index = _claim(claimed)
        if index >= num_tasks:
            return
        try:
            results.put((index, True, fn(*tasks[index])))
        except BaseException:  # noqa: B036 - sent to the parent, which raises it
            results.put((index, False, traceback.format_exc()))
            return
