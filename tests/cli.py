"""Run `charjax` command lines for tests: the real entry point (absl flags, config files,
exit codes, stderr), many command lines in one Python process.

`run_many` starts one process that imports charjax once and runs each command line in a
fork of itself, one after the other, so each gets fresh flags and its own exit code and
output, without paying Python's and JAX's start-up for every case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_DRIVER = r"""
import json, os, sys, tempfile, threading, traceback
import charjax.checkpoints, charjax.cli, charjax.evaluate, charjax.imageio, charjax.train
assert threading.active_count() == 1, "forking a process with threads is unsafe"
results = {}
for name, (argv, before) in json.loads(sys.argv[1]).items():
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        code = 0
        try:
            exec(before, {})
            charjax.cli.run(["charjax", *argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    texts = []
    for f in (out, err):
        f.seek(0)
        texts.append(f.read().decode("utf-8", "replace"))
    results[name] = [os.waitstatus_to_exitcode(status), *texts]
sys.stdout.write(json.dumps(results))
"""


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_many(cases: dict[str, list[str] | tuple[list[str], str]],
             env: dict[str, str] | None = None, timeout: float = 900) -> dict[str, Result]:
    """{name: `charjax ARGV...`} -> {name: Result}, run in order in one process. A case may
    be (argv, code): Python source run in that case's process first (to patch a function)."""
    cases = {name: case if isinstance(case, tuple) else (case, "") for name, case in cases.items()}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(cases)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the CLI driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {name: Result(*values) for name, values in json.loads(proc.stdout).items()}


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 600) -> Result:
    """One `charjax ARGV...` in its own process."""
    proc = subprocess.run([sys.executable, "-m", "charjax", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """A failed command that said why in exactly one line on stderr, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
