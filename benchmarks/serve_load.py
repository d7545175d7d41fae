"""Load on `charjax serve`: requests/s and p50/p99 latency for 1 and 16 concurrent clients.

    python benchmarks/serve_load.py --workdir runs/demo [--requests 400] [--max_seconds 60]

Starts `charjax serve` on 127.0.0.1 (only) in its own process, waits for /health, then each
client thread POSTs the same 280x280 PNG drawing (what the page sends) over a kept-alive
connection until the request count or the time bound is reached. Clients and server share the
machine's cores, so the figures are a floor for a server with its own machine.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

HOST = "127.0.0.1"


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


def run_clients(port: int, body: bytes, clients: int, requests: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    stop_at = time.monotonic() + max_seconds
    failures = []

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        while time.monotonic() < stop_at:
            with lock:
                if next(counter, None) is None:
                    break
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/png"})
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - t0
            if response.status != 200 or not json.loads(payload)["top"]:
                failures.append(response.status)
            with lock:
                latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(ms), "failures": len(failures),
            "requests_per_s": len(ms) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--requests", type=int, default=400, help="per concurrency level")
    parser.add_argument("--max_seconds", type=float, default=60.0, help="per concurrency level")
    parser.add_argument("--clients", default="1,16")
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "charjax", "serve", "--workdir",
                               args.workdir, "--host", HOST, "--port", str(port)])
    try:
        _wait_healthy(port, server)
        body = _drawing()
        run_clients(port, body, 1, 20, 30)  # warm-up: compile, fill caches
        rows = [run_clients(port, body, int(c), args.requests, args.max_seconds)
                for c in args.clients.split(",")]
    finally:
        server.terminate()
        server.wait(30)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {len(body)}-byte PNG")
    print("| clients | requests | failures | requests/s | p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clients']} | {r['requests']} | {r['failures']} | "
              f"{r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
