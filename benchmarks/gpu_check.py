"""The GPU check's parts, each in its own process under its own time limit, and its report.

benchmarks/gpu_check.sh sets up the host and runs this; see it for usage. Parts, in
order: the default run cold (empty CHARJAX_CACHE, data generation included) and warm
(same cache, new workdir), one epoch (epoch_time.py), the step tables (step_time.py), the
test suite. Each part's limit is its own cap, cut where needed so the parts after it
keep theirs; whatever the earlier parts leave goes to the suite, last. A part that
fails or runs out of time is recorded as such and the next one runs. Writes
gpu_check.json, gpu_check.md and gpu_check.log (every part's output) to the out folder.

    python benchmarks/gpu_check.py OUT --replay OLD/gpu_check.json   # runs nothing

judges an earlier report's parts again (after a change to the targets or the tables).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PARTS = ("default_cold", "default_warm", "epoch", "steps", "suite")
EPOCH_IMAGES = 119_040  # the default config's training split

# Per mode: the deadline for everything, each part's cap (s), and the sizes.
MODES = {
    "gpu": {
        "deadline_s": 360,
        "caps": {"default_cold": 75, "default_warm": 35, "epoch": 45, "steps": 125,
                 "suite": 70},
        "default_run": [],
        "epoch": ["--device", "gpu", "--precision", "float32"],
        "steps": ["--device", "gpu", "--jobs", "3", "--repeats", "2"],
        "suite": ["-n", "4", "--dist", "loadfile"],
    },
    "cpu": {
        "deadline_s": 660,
        "caps": {"default_cold": 150, "default_warm": 90, "epoch": 120, "steps": 150,
                 "suite": 120},
        "default_run": ["--config.data.synthetic.num_images=6200", "--config.num_epochs=2"],
        "epoch": ["--device", "cpu", "--precision", "float32",
                  "--override", "data.synthetic.num_images=6200"],
        "steps": ["--device", "cpu", "--frameworks", "charjax,keras", "--batch-sizes",
                  "32,128", "--warmup", "3", "--steps", "10", "--repeats", "1"],
        "suite": ["-n", "0", "tests/test_configs.py", "tests/test_charset.py",
                  "tests/test_framing.py"],
    },
    # The quickest check that the script works end to end (the test suite runs it): the
    # step part at its smallest, the others recorded as skipped. The cap is generous only
    # so that a loaded machine still finishes; a quiet one takes ~10 s.
    "smoke": {
        "deadline_s": 300,
        "caps": {"default_cold": 0, "default_warm": 0, "epoch": 0, "steps": 240, "suite": 0},
        "default_run": [],
        "epoch": [],
        "steps": ["--device", "cpu", "--frameworks", "charjax", "--batch-sizes", "32",
                  "--warmup", "1", "--steps", "3", "--repeats", "1"],
        "suite": [],
    },
}


class Log:
    """gpu_check.log: every part's command and output, in order."""

    def __init__(self, path: str):
        self.file = open(path, "w")  # noqa: SIM115 - open for the whole check

    def write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()


def run_part(cmd: list[str], limit_s: float, log: Log, env: dict | None = None,
             cwd: str = ROOT) -> dict:
    """Runs cmd with its output to the log, each line stamped with its arrival time.

    Past the limit the process group gets SIGINT (pytest then prints its summary),
    and SIGKILL 15 s later. Returns status ('ok', 'failed', 'timeout'), seconds, the
    exit code, and the output as (seconds since start, line) pairs."""
    log.write(f"\n$ {shlex.join(cmd)}   # limit {limit_s:.0f} s\n")
    if limit_s <= 0:
        log.write("skipped: no time left\n")
        return {"status": "skipped", "seconds": 0.0, "lines": [], "returncode": None}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=cwd, start_new_session=True, bufsize=1)
    lines: list[tuple[float, str]] = []
    timed_out = False

    def interrupt(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def watchdog() -> None:
        nonlocal timed_out
        try:
            proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            interrupt(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                interrupt(signal.SIGKILL)

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
        log.write(line)
    proc.wait()
    guard.join()
    interrupt(signal.SIGKILL)  # whatever it left behind in its group
    seconds = time.perf_counter() - start
    status = "timeout" if timed_out else ("ok" if proc.returncode == 0 else "failed")
    log.write(f"# {status} after {seconds:.1f} s (exit {proc.returncode})\n")
    return {"status": status, "seconds": round(seconds, 2), "lines": lines,
            "returncode": proc.returncode}


def tail(lines: list[tuple[float, str]], n: int = 15) -> str:
    return "\n".join(text for _, text in lines[-n:])


# --- the parts ---


def config_flags_that_exist(flags: list[str]) -> tuple[list[str], list[str]]:
    """The --config.FIELD=VALUE flags whose FIELD is in configs/default.py, and the others
    (for flags of fields a newer charjax may have)."""
    sys.path.insert(0, ROOT)
    from charjax import config_files

    config = config_files.load(os.path.join(ROOT, "configs", "default.py"))
    kept, dropped = [], []
    for flag in flags:
        field = flag.split("=", 1)[0].removeprefix("--config.")
        node, ok = config, True
        for part in field.split("."):
            if hasattr(node, "keys") and part in node:
                node = node[part]
            else:
                ok = False
                break
        (kept if ok and flag.startswith("--config.") else dropped).append(flag)
    return kept, dropped


_EPOCH = re.compile(r"epoch (\d+)(?:/\d+)?: .*\| ([0-9.]+) s(?:,|\s*\|)")
_FIRST_STEP = re.compile(r"first step\D*?([0-9.]+)\s*s", re.IGNORECASE)
_TEST = re.compile(r"test accuracy ([0-9.]+)")


def parse_run_log(lines: list[tuple[float, str]]) -> dict:
    """From a train run's (arrival seconds, line) pairs: each epoch's seconds, the first
    epoch's extra over the median of the others (compilation, mostly), the time to the
    first step where the log says it, when the first epoch line came, the test accuracy."""
    epochs, first_step, accuracy, first_epoch_line = {}, None, None, None
    for at, text in lines:
        if m := _EPOCH.search(text):
            epochs[int(m.group(1))] = float(m.group(2))
            if first_epoch_line is None:
                first_epoch_line = at
        if first_step is None and (m := _FIRST_STEP.search(text)):
            first_step = float(m.group(1))
        if m := _TEST.search(text):
            accuracy = float(m.group(1))
    later = [s for e, s in epochs.items() if e > 1]
    return {"epochs_s": [epochs[e] for e in sorted(epochs)],
            "first_epoch_extra_s": round(epochs[1] - statistics.median(later), 2)
            if 1 in epochs and later else None,
            "first_step_s": first_step,
            "first_epoch_line_s": round(first_epoch_line, 2) if first_epoch_line else None,
            "test_accuracy": accuracy}


def default_run(python: str, workdir: str, cache: str, flags: list[str], limit_s: float,
                log: Log, env: dict) -> dict:
    """`charjax train --config configs/default.py`, timed from outside, and its log read."""
    cmd = [python, "-m", "charjax", "train", "--config", "configs/default.py",
           "--workdir", workdir, *flags]
    out = run_part(cmd, limit_s, log, env=dict(env, CHARJAX_CACHE=cache))
    return {"status": out["status"], "seconds": out["seconds"], "limit_s": round(limit_s),
            "command": shlex.join(cmd), **parse_run_log(out["lines"]),
            "tail": tail(out["lines"])}


def json_part(cmd: list[str], json_path: str, limit_s: float, log: Log, env: dict) -> dict:
    """A benchmark script that writes its results to --json: its status and the results."""
    out = run_part([*cmd, "--json", json_path], limit_s, log, env=env)
    part = {"status": out["status"], "seconds": out["seconds"], "limit_s": round(limit_s),
            "command": shlex.join(cmd)}
    try:
        with open(json_path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        part["tail"] = tail(out["lines"])
        if part["status"] == "ok":
            part["status"] = "failed"
        return part
    if isinstance(data, list):  # step_time.py on the CPU writes a bare list
        data = {"results": data, "failures": []}
    part.update(data)
    if part.get("failures"):
        part["tail"] = tail(out["lines"])
    return part


_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")
_PROGRESS_LINE = re.compile(r"^[.FEsxX]+(\s+\[\s*\d+%\])?\s*(#.*)?$")
_PROGRESS = re.compile(r"(\s*\[\s*\d+%\])?\s*(#.*)?$")


# Test files that import an optional package at their top, and the package: left out of
# the suite, with the reason in the report, where the package does not import.
NEEDS = {"tests/test_datasets_tfds.py": "tensorflow_datasets"}


def unimportable(python: str, env: dict) -> dict[str, str]:
    """{test file: why} for the NEEDS whose package fails to import under `python`."""
    out = {}
    for path, module in NEEDS.items():
        proc = subprocess.run([python, "-c", f"import {module}"], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=120)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            out[path] = f"import {module} failed: {last[:200]}"
    return out


def suite_counts(lines: list[tuple[float, str]]) -> tuple[dict[str, int], str]:
    """pytest's passed/failed/skipped/errors from its summary line, or, where it was
    stopped before printing one, from its progress characters."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    summary = ""
    for _, text in reversed(lines):
        found = _COUNTS.findall(text)
        if found and (" in " in text or "interrupted" in text.lower() or "=" in text):
            summary = text.strip("= ")
            for n, kind in found:
                kind = "errors" if kind.startswith("error") else kind
                if kind in counts:
                    counts[kind] = int(n)
            break
    else:  # stopped before its summary: count the progress characters
        marks = "".join(_PROGRESS.sub("", text) for _, text in lines
                        if _PROGRESS_LINE.match(text))
        counts.update(passed=marks.count("."), failed=marks.count("F"),
                      skipped=marks.count("s"), errors=marks.count("E"))
        summary = f"no summary (stopped): {counts['passed']} passed so far"
    return counts, summary


def suite(python: str, args: list[str], limit_s: float, log: Log, env: dict) -> dict:
    start = time.time()
    ignored = unimportable(python, env) if not any(a.startswith("tests/") for a in args) \
        else {}
    ignores = [f"--ignore={path}" for path in ignored]
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, *ignores]
    out = run_part(cmd, limit_s - (time.time() - start), log, env=env)
    counts, summary = suite_counts(out["lines"])
    return {"status": out["status"], "seconds": out["seconds"], "limit_s": round(limit_s),
            "command": shlex.join(cmd), **counts, "summary": summary, "ignored": ignored,
            "tail": tail(out["lines"], 25) if out["status"] != "ok" else ""}


# --- targets and the report ---


def _rows(steps: dict, framework: str) -> dict[tuple[str, int], float]:
    return {(r["precision"], r["batch_size"]): r["median_step_ms"]
            for r in steps.get("results", []) if r["framework"] == framework}


def targets(parts: dict, mode: str) -> list[dict]:
    """The GPU's targets, each with the measured value and pass (None: no data)."""
    out = []

    def add(name, goal, value, ok, note=""):
        out.append({"target": name, "goal": goal, "value": value, "pass": ok, "note": note})

    for part, goal in (("default_cold", 60), ("default_warm", 20)):
        p = parts.get(part, {})
        ok = p.get("status") == "ok"
        add(f"default run, {part.split('_')[1]}", f"<= {goal} s",
            f"{p['seconds']:.1f} s" if ok else p.get("status", "not run"),
            (p["seconds"] <= goal) if ok else (None if not p or p["status"] == "skipped"
                                               else False))
    epoch = [r for r in parts.get("epoch", {}).get("results", [])
             if r["framework"] == "charjax" and r["precision"] == "float32"]
    if epoch:
        r = epoch[0]
        note = "" if r["images"] == EPOCH_IMAGES else f"{r['images']:,} images, not 119,040"
        add("one epoch, 119,040 images, augmented", "<= 0.3 s", f"{r['seconds']:.3f} s",
            r["seconds"] <= 0.3 if not note else None, note)
    else:
        add("one epoch, 119,040 images, augmented", "<= 0.3 s", "no data", None)
    steps = parts.get("steps", {})
    charjax = _rows(steps, "charjax")
    keras = _rows(steps, "keras-jax" if mode == "gpu" else "keras")
    compiled = _rows(steps, "torch-compile")
    variants = {r["framework"]: r for r in steps.get("results", [])
                if r["framework"].startswith("charjax+")}
    for precision in ("float32", "bf16"):
        key = (precision, 2048)
        best = [f"{name} {compiled[key] / r['median_step_ms']:.2f}x"
                for name, r in variants.items()
                if (r["precision"], r["batch_size"]) == key and key in compiled]
        if key in charjax and key in compiled:
            ratio = compiled[key] / charjax[key]
            add(f"step >= torch.compile, batch 2048, {precision}", ">= 1.00x",
                f"{ratio:.2f}x", ratio >= 1.0, "; ".join(best))
        else:
            add(f"step >= torch.compile, batch 2048, {precision}", ">= 1.00x", "no data", None)
    for batch in (128, 512, 2048):
        ratios = {p: keras[(p, batch)] / charjax[(p, batch)] for p in ("float32", "bf16")
                  if (p, batch) in charjax and (p, batch) in keras}
        value = ", ".join(f"{p} {r:.2f}x" for p, r in ratios.items()) or "no data"
        add(f"charjax vs Keras on JAX, batch {batch}", ">= 1.00x", value,
            all(r >= 1.0 for r in ratios.values()) if ratios else None)
    s = parts.get("suite", {})
    if s.get("status") in (None, "skipped"):
        add("test suite on CUDA", "all pass", "not run", None)
    else:
        value = f"{s['passed']} passed, {s['failed']} failed, {s['errors']} errors"
        add("test suite on CUDA" if mode == "gpu" else "test suite (a subset, CPU)",
            "all pass", value + ("" if s["status"] == "ok" else f" ({s['status']})"),
            s["status"] == "ok" and s["failed"] == 0 and s["errors"] == 0,
            "left out: " + ", ".join(s.get("ignored", {})) if s.get("ignored") else "")
    return out


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def markdown(report: dict) -> str:
    mode, parts = report["mode"], report["parts"]
    mark = {True: "pass", False: "FAIL", None: "-"}
    lines = [f"# GPU check ({mode}), {report['started']}", "",
             f"{report['host'].get('devices', '')}; jax {report['host'].get('jax', '?')}; "
             f"{report['seconds']:.0f} s in all", ""]
    if mode != "gpu":
        lines += ["A CPU run at small sizes: the goals are the GPU's, shown to check the "
                  "report, not judged.", ""]
    lines += ["| target | goal | measured | pass | note |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        ok = t["pass"] if mode == "gpu" else None
        lines.append(f"| {t['target']} | {t['goal']} | {t['value']} | {mark[ok]} | "
                     f"{t['note']} |")
    lines += ["", "| part | status | seconds | limit s |", "|---|---|---:|---:|"]
    for name in PARTS:
        p = parts.get(name, {})
        lines.append(f"| {name} | {p.get('status', 'not run')} | {p.get('seconds', 0):.1f} | "
                     f"{p.get('limit_s', 0)} |")
    steps = parts.get("steps", {})
    if steps.get("results"):
        sys.path.insert(0, HERE)
        import step_time_gpu

        lines += ["", "## Train steps", ""] + step_time_gpu.table(
            steps["results"], "keras-jax" if mode == "gpu" else "keras")
        shown = {r["framework"] for r in steps["results"]}
        lines += [""] + [f"- {name}: {why}" for name, why in steps.get("variants", {}).items()
                         if name in shown]
        lines += [f"- {name}: {', '.join(f'{k} {v}' for k, v in v.items())}"
                  for name, v in steps.get("versions", {}).items() if isinstance(v, dict)]
    epoch = parts.get("epoch", {})
    if epoch.get("results"):
        lines += ["", "## One epoch (augmentation on for charjax, off for Keras)", "",
                  "| framework | precision | images | batch | epoch s | images/s |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in epoch["results"]:
            lines.append(f"| {r['framework']} | {r['precision']} | {r['images']:,} | "
                         f"{r.get('batch_size', '')} | {r['seconds']:.3f} | "
                         f"{r['images'] / r['seconds']:,.0f} |")
    lines += ["", "## Default run", "",
              "| run | status | seconds | first epoch extra s | first step s | epochs s "
              "| test accuracy |", "|---|---|---:|---:|---:|---|---:|"]
    for name in ("default_cold", "default_warm"):
        p = parts.get(name, {})
        epochs = ", ".join(f"{s:.1f}" for s in p.get("epochs_s", []))
        lines.append(f"| {name.split('_')[1]} | {p.get('status', 'not run')} | "
                     f"{p.get('seconds', 0):.1f} | {_or_dash(p.get('first_epoch_extra_s'))} | "
                     f"{_or_dash(p.get('first_step_s'))} | {epochs} | "
                     f"{_or_dash(p.get('test_accuracy'))} |")
    s = parts.get("suite", {})
    lines += ["", f"Suite: {s.get('status', 'not run')}, {s.get('summary', '')}"]
    for path, why in s.get("ignored", {}).items():
        lines.append(f"- left out: {path} ({why})")
    problems = [f"- {name}: {parts[name]['status']}" for name in PARTS
                if parts.get(name, {}).get("status") not in ("ok", "skipped", None)]
    for name in ("steps", "epoch"):
        for f in parts.get(name, {}).get("failures", []):
            problems.append(f"- {name} {f['framework']} {f['precision']} "
                            f"{f.get('batch_size', '')}: {f['error'][:200]}")
    if problems:
        lines += ["", "## Problems", "", *problems]
    return "\n".join(lines) + "\n"


def reread(name: str, part: dict) -> dict:
    """A part recorded with its raw output (`lines`: [seconds, text] pairs, as run_part
    returns them, e.g. a default run's output captured by hand) read the way the check
    reads it; any other part as it is."""
    if "lines" not in part:
        return part
    lines = [(float(at), text) for at, text in part["lines"]]
    part = {k: v for k, v in part.items() if k != "lines"}
    if name.startswith("default_"):
        part.update(parse_run_log(lines))
    elif name == "suite":
        counts, summary = suite_counts(lines)
        part.update(counts, summary=summary)
    return part


def write_report(out: str, report: dict) -> None:
    """Judges the report's parts against the targets; writes gpu_check.json and .md."""
    report["targets"] = targets(report["parts"], report["mode"])
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=2)
    text = markdown(report)
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write(text)
    print("\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for gpu_check.json, .md and .log")
    parser.add_argument("--mode", choices=tuple(MODES), default="gpu")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--started", type=float, default=time.time(),
                        help="epoch seconds the check began (the deadline counts from it)")
    parser.add_argument("--deadline-s", type=float)
    parser.add_argument("--default-run-flags", default="",
                        help="extra --config.X=V flags for the default run, passed only "
                             "where configs/default.py has the field")
    parser.add_argument("--epoch-flags", default="", help="extra epoch_time.py arguments")
    parser.add_argument("--cap", action="append", default=[], metavar="PART=SECONDS")
    parser.add_argument("--host", default="{}", help="JSON from the shell's header")
    parser.add_argument("--replay", metavar="JSON",
                        help="run nothing: judge the parts of an earlier gpu_check.json again "
                             "(today's targets and tables) and write the report to OUT")
    args = parser.parse_args()

    if args.replay:
        with open(args.replay) as f:
            report = json.load(f)
        report["parts"] = {name: reread(name, p) for name, p in report["parts"].items()}
        os.makedirs(args.out, exist_ok=True)
        write_report(args.out, report)
        print(f"wrote {args.out}/gpu_check.json, gpu_check.md")
        return

    mode = MODES[args.mode]
    caps = dict(mode["caps"])
    for item in args.cap:
        part, _, seconds = item.partition("=")
        caps[part] = float(seconds)
    deadline = args.started + (args.deadline_s or mode["deadline_s"])
    os.makedirs(args.out, exist_ok=True)
    log = Log(os.path.join(args.out, "gpu_check.log"))
    python = args.python
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    # Several processes share the GPU in the step part (workers side by side) and the
    # suite (xdist workers): there each takes memory as it needs it, instead of JAX's
    # default 75 % of the card. The default runs and the epoch run alone, as a user's would.
    shared_gpu = dict(env, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    if args.mode != "gpu":
        env.update(JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
        shared_gpu = env
    if args.mode == "smoke":
        env["CHARJAX_KERNELS"] = "off"  # XLA's path: no C++ build into the empty cache

    def limit(part: str) -> float:
        """The part's cap; where less time is left than the caps of this part and the
        later ones add up to, its share of what is left. On a GPU the suite, last,
        takes all that is left."""
        left = max(0.0, deadline - time.time())
        rest = PARTS[PARTS.index(part):]
        if caps[part] <= 0:
            return 0.0
        if part == PARTS[-1] and args.mode == "gpu":
            return left
        wanted = sum(caps[p] for p in rest if caps[p] > 0)
        return min(caps[part], left * caps[part] / wanted)

    scratch = tempfile.mkdtemp(prefix="charjax-gpu-check-")
    cache = os.path.join(scratch, "cache")
    flags, dropped = config_flags_that_exist(shlex.split(args.default_run_flags))
    for flag in dropped:
        print(f"default run: {flag} skipped (no such field in configs/default.py)")
    run_flags = [*mode["default_run"], *flags]
    parts: dict[str, dict] = {}

    runners = {
        "default_cold": lambda t: default_run(python, os.path.join(scratch, "run-cold"), cache,
                                              run_flags, t, log, env),
        "default_warm": lambda t: default_run(python, os.path.join(scratch, "run-warm"), cache,
                                              run_flags, t, log, env),
        "epoch": lambda t: json_part(
            [python, os.path.join(HERE, "epoch_time.py"), *mode["epoch"],
             *shlex.split(args.epoch_flags), "--budget-s", f"{max(t - 5, 1):.0f}"],
            os.path.join(scratch, "epoch.json"), t, log, dict(env, CHARJAX_CACHE=cache)),
        "steps": lambda t: json_part(
            [python, os.path.join(HERE, "step_time.py"), *mode["steps"],
             "--budget-s", f"{max(t - 10, 1):.0f}"],
            os.path.join(scratch, "steps.json"), t, log, shared_gpu),
        "suite": lambda t: suite(python, mode["suite"], t, log, shared_gpu),
    }
    titles = {"default_cold": "default run, cold (empty cache, data generated)",
              "default_warm": "default run, warm (same cache, new workdir)",
              "epoch": "one epoch", "steps": "train steps", "suite": "test suite"}
    for name in PARTS:
        print(f"[{time.time() - args.started:5.0f} s] {titles[name]}", flush=True)
        if caps[name] <= 0:
            parts[name] = {"status": "skipped", "seconds": 0.0, "limit_s": 0,
                           "why": f"not part of the {args.mode} mode"}
            log.write(f"\n# {name}: skipped in the {args.mode} mode\n")
            continue
        parts[name] = runners[name](limit(name))
    print(f"[{time.time() - args.started:5.0f} s] done", flush=True)

    report = {"mode": args.mode, "started": datetime.datetime.fromtimestamp(
        args.started, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.time() - args.started, 1), "host": json.loads(args.host),
        "default_run_flags": run_flags, "parts": parts}
    write_report(args.out, report)
    print(f"wrote {args.out}/gpu_check.json, gpu_check.md, gpu_check.log")


if __name__ == "__main__":
    main()
