"""Load on `charjax serve`: requests/s, p50/p99 latency and the server's peak memory for 1
and 16 concurrent clients, and with --hostile under decompression bombs and malformed bodies.

    python benchmarks/serve_load.py --workdir runs/demo [--requests 400] [--max_seconds 60]
                                    [--hostile [--bomb_requests 192]]

Starts `charjax serve` on 127.0.0.1 (only) in its own process, waits for /health, then each
client thread POSTs the same 280x280 PNG drawing (what the page sends) over a kept-alive
connection until the request count or the time bound is reached. Clients and server share the
machine's cores, so the figures are a floor for a server with its own machine.

--hostile then sends, from 16 clients at once, the decompression bombs of
tests/hostile_bodies.py (each at most ~100 KB: PNGs that decode to 81 MP, or to 64 MB of
RGBA at the largest size the server decodes; headers claiming 10 GP; a PNG of 40 MB of
compressed text), then every hostile body of the corpus once, and checks that the drawing is
still answered as before. "peak RSS" is the server's highest resident memory sampled every 20
ms during a row; "failures" are answers other than the ones a body deserves (any 5xx among them).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import io
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image

HOST = "127.0.0.1"


def _module(name: str):
    """A module of the test suite's (the hostile bodies live beside the tests using them)."""
    tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
    spec = importlib.util.spec_from_file_location(name, os.path.join(tests, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drawing() -> bytes:
    from charjax.datasets import drawn

    out = io.BytesIO()
    Image.fromarray(drawn.render("R", 280, 0.7, 16.0)).convert("RGBA").save(out, format="PNG")
    return out.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, server: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.25)
    raise SystemExit("server did not become healthy")


def _rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A process's resident memory (MB) from /proc (Linux); None elsewhere."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def _peak_rss(pid: int, every: float = 0.02) -> Iterator[dict]:
    """{'peak_mb': ...}: the highest resident memory of `pid` sampled during the block."""
    out: dict = {"peak_mb": _rss_mb(pid)}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            rss = _rss_mb(pid)
            if rss is not None and (out["peak_mb"] is None or rss > out["peak_mb"]):
                out["peak_mb"] = rss

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()


def run_clients(port: int, bodies: list[tuple[bytes, dict, frozenset]], clients: int,
                requests: int, max_seconds: float, label: str = "drawing",
                server_pid: int | None = None) -> dict:
    """`clients` threads send `bodies` (body, headers, statuses it deserves) round-robin, each
    over one kept-alive connection, until `requests` or `max_seconds`."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    stop_at = time.monotonic() + max_seconds
    failures, server_errors = [], []
    cycle = itertools.cycle(bodies)

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        while time.monotonic() < stop_at:
            with lock:
                if next(counter, None) is None:
                    break
                body, headers, ok = next(cycle)
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - t0
            if response.status not in ok or (response.status == 200
                                             and not json.loads(payload)["top"]):
                failures.append(response.status)
            if response.status >= 500:
                server_errors.append(response.status)
            with lock:
                latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    with _peak_rss(server_pid) if server_pid else contextlib.nullcontext({}) as memory:
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"load": label, "clients": clients, "requests": len(ms), "failures": len(failures),
            "server_errors": len(server_errors), "requests_per_s": len(ms) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "wall_s": wall, "peak_rss_mb": memory.get("peak_mb")}


def run_corpus(port: int, cases: list, server_pid: int) -> dict:
    """Every hostile body once, each on a fresh connection (some lie about their length)."""
    latencies, failures, server_errors = [], [], []
    with _peak_rss(server_pid) as memory:
        start = time.perf_counter()
        for case in cases:
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            t0 = time.perf_counter()
            conn.putrequest("POST", "/predict" + case.query, skip_accept_encoding=True)
            headers = {k.lower(): v for k, v in case.headers.items()}
            headers.setdefault("content-length", str(len(case.body)))
            for key, value in headers.items():
                conn.putheader(key, value)
            conn.endheaders()
            with contextlib.suppress(OSError):  # the server may answer before all is sent
                conn.send(case.body)
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - t0)
            if response.status not in case.ok:
                failures.append((case.id, response.status))
            if response.status >= 500:
                server_errors.append(case.id)
            conn.close()
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    if failures:
        print(f"unexpected answers: {failures}", file=sys.stderr)
    return {"load": "hostile corpus", "clients": 1, "requests": len(ms),
            "failures": len(failures), "server_errors": len(server_errors),
            "requests_per_s": len(ms) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "wall_s": wall,
            "peak_rss_mb": memory["peak_mb"]}


def _top(port: int, body: bytes) -> list:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/png"})
    answer = json.loads(conn.getresponse().read())["top"]
    conn.close()
    return [t["char"] for t in answer]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--requests", type=int, default=400, help="per concurrency level")
    parser.add_argument("--max_seconds", type=float, default=60.0, help="per concurrency level")
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--hostile", action="store_true",
                        help="also 16 clients sending decompression bombs, then every hostile "
                             "body once (tests/hostile_bodies.py)")
    parser.add_argument("--bomb_requests", type=int, default=192,
                        help="bombs sent in all (at most --max_seconds)")
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "charjax", "serve", "--workdir",
                               args.workdir, "--host", HOST, "--port", str(port)])
    drawing = [(_drawing(), {"Content-Type": "image/png"}, frozenset({200}))]
    try:
        _wait_healthy(port, server)
        run_clients(port, drawing, 1, 20, 30)  # warm-up: compile, fill caches
        idle_mb = _rss_mb(server.pid)
        before = _top(port, drawing[0][0])
        rows = [run_clients(port, drawing, int(c), args.requests, args.max_seconds,
                            server_pid=server.pid) for c in args.clients.split(",")]
        if args.hostile:
            hostile = _module("hostile_bodies")
            bombs = [(b.body, b.headers, b.ok) for b in hostile.bombs()]
            biggest = max(len(b[0]) for b in bombs)
            rows.append(run_clients(port, bombs, 16, args.bomb_requests, args.max_seconds,
                                    f"bombs (<= {biggest // 1000} KB)", server.pid))
            rows.append(run_corpus(port, hostile.corpus(), server.pid))
            after = _top(port, drawing[0][0])
            if after != before:
                print(f"the drawing's answer changed after the hostile load: {before} -> "
                      f"{after}", file=sys.stderr)
                raise SystemExit(1)
        high_water = _rss_mb(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(30)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {len(drawing[0][0])}-byte "
          f"PNG; server idle {idle_mb or 0:.0f} MB, high-water {high_water or 0:.0f} MB")
    print("| load | clients | requests | failures | 5xx | requests/s | p50 ms | p99 ms | "
          "peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        peak = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else "-"
        print(f"| {r['load']} | {r['clients']} | {r['requests']} | {r['failures']} | "
              f"{r['server_errors']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {peak} |")
    if any(r["server_errors"] for r in rows):
        raise SystemExit("the server answered 5xx")


if __name__ == "__main__":
    main()
