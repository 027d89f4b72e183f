"""Load and fault test of ``stylegram serve``, on 127.0.0.1 only, bounded in requests and time.

    .venv/bin/python benchmarks/bench_web.py [--budget SECONDS]

Starts the real server in a subprocess (so that its memory and threads can be read from /proc and SIGTERM
sent), then:

1. 20 quick submissions: exactly as many accepted as the queue holds, the rest 429, no 5xx;
2. 50 event-stream clients on one job while 200 health requests are timed (p95, and its ratio to the p95 of
   the idle server measured in the same run: the anchor);
3. 20 clients dropping mid-stream: the job still finishes, the server's memory stays flat;
4. 30 jobs with random cancels: each ends done or cancelled; no leaked threads or temporary files; RSS growth;
5. SIGTERM during a run: the time to a clean exit.

Every loop is bounded; the whole run stops itself after ``--budget`` seconds (default 600).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

HOST = "127.0.0.1"  # loopback only, by design
QUEUE = 8
SHORT = {"size": "32", "iterations": "20", "precision": "float32"}
LONG = {"size": "32", "iterations": "1000", "precision": "float32"}


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


FILES = [("content", ("photo.png", _png(0), "image/png")), ("style", ("painting.png", _png(1), "image/png"))]


class Server:
    """``stylegram serve`` in a subprocess on a free loopback port."""

    def __init__(self, data: Path) -> None:
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        self.data = data
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.log = open(data.parent / "server.log", "wb")  # noqa: SIM115 (open for the server's lifetime)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stylegram", "serve", "--host", HOST, "--port", str(self.port), "--queue",
             str(QUEUE), "--data-dir", str(data), "--devices", "cpu", "--quiet"],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.url = f"http://{HOST}:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the server did not start: {(data.parent / 'server.log').read_text()}")
            time.sleep(0.2)

    def status(self, key: str) -> int:
        """A number from /proc/PID/status (VmRSS in kB, Threads)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def submit(self, options: dict[str, str]) -> httpx.Response:
        return self.client.post("/api/jobs", files=FILES, data=options)

    def wait(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view: dict[str, Any] = self.client.get(f"/api/jobs/{job_id}").json()
            if view["state"] in ("done", "failed", "cancelled"):
                return view
            time.sleep(0.1)
        raise SystemExit(f"job {job_id} did not finish in {timeout} s")

    def wait_running(self, job_id: str) -> None:
        deadline = time.monotonic() + 60
        while self.client.get(f"/api/jobs/{job_id}").json()["iteration"] < 1:
            if time.monotonic() > deadline:
                raise SystemExit("job did not start")
            time.sleep(0.05)


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def health_latencies(server: Server, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert server.client.get("/api/health").status_code == 200
        out.append(1000 * (time.perf_counter() - t0))
    return out


def burst(server: Server) -> dict[str, Any]:
    codes = [server.submit(LONG).status_code for _ in range(20)]
    accepted = codes.count(202)
    for view in server.client.get("/api/jobs").json():
        if view["state"] in ("queued", "running"):
            server.client.delete(f"/api/jobs/{view['id']}")
    return {"accepted": accepted, "refused_429": codes.count(429), "5xx": sum(c >= 500 for c in codes),
            "ok": accepted == QUEUE and codes.count(429) == 20 - QUEUE}


def _follow(url: str, job_id: str, results: list[str], stop_after: int | None = None) -> None:
    """Read a job's event stream to its end (or drop it after ``stop_after`` events); record the last state."""
    last, seen = "none", 0
    try:
        with httpx.stream("GET", f"{url}/api/jobs/{job_id}/events", timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    seen += 1
                    last = json.loads(line[6:]).get("state", last)
                    if stop_after is not None and seen >= stop_after:
                        break
    except httpx.HTTPError as e:
        last = f"error {type(e).__name__}"
    results.append(last)


def fan_out(server: Server, idle_p95: float, clients: int = 50, health: int = 200) -> dict[str, Any]:
    job = server.submit({**SHORT, "iterations": "300"}).json()["id"]
    server.wait_running(job)
    results: list[str] = []
    threads = [threading.Thread(target=_follow, args=(server.url, job, results)) for _ in range(clients)]
    for t in threads:
        t.start()
    latencies = health_latencies(server, health)
    still_running = server.client.get(f"/api/jobs/{job}").json()["state"] == "running"
    for t in threads:
        t.join(120)
    return {"clients": clients, "clients_saw_done": results.count("done"), "health_requests": health,
            "health_p95_ms": round(p95(latencies), 1), "idle_p95_ms": round(idle_p95, 1),
            "ratio_to_idle": round(p95(latencies) / idle_p95, 2), "job_running_throughout": still_running,
            "ok": results.count("done") == clients and p95(latencies) < 200}


def drops(server: Server, clients: int = 20) -> dict[str, Any]:
    before = server.status("VmRSS")
    job = server.submit({**SHORT, "iterations": "150"}).json()["id"]
    server.wait_running(job)
    results: list[str] = []
    threads = [threading.Thread(target=_follow, args=(server.url, job, results, 2)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    state = server.wait(job)["state"]
    after = server.status("VmRSS")
    return {"clients_dropped": len(results), "job": state, "rss_before_mb": round(before / 1024, 1),
            "rss_after_mb": round(after / 1024, 1), "growth": round(after / before - 1, 3),
            "ok": state == "done" and after / before < 1.10}


def churn(server: Server, jobs: int = 30, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    threads_before, rss_before = server.status("Threads"), server.status("VmRSS")
    ids: list[str] = []
    deadline = time.monotonic() + 300
    while len(ids) < jobs and time.monotonic() < deadline:
        r = server.submit({**SHORT, "iterations": str(rng.choice([5, 20, 60]))})
        if r.status_code == 429:
            time.sleep(0.3)
            continue
        ids.append(r.json()["id"])
        if rng.random() < 0.4:  # cancel, mostly this one (queued or running), sometimes an earlier one
            time.sleep(rng.random() * 0.5)
            server.client.delete(f"/api/jobs/{ids[-1] if rng.random() < 0.7 else rng.choice(ids)}")
    states = [server.wait(i)["state"] for i in ids]
    time.sleep(1.0)  # let the worker settle
    temporary = [p.name for p in server.data.rglob("*") if p.name.endswith(".tmp")]
    uploads = list((server.data / "uploads").glob("*")) if (server.data / "uploads").exists() else []
    threads_after, rss_after = server.status("Threads"), server.status("VmRSS")
    growth = rss_after / rss_before - 1
    return {"jobs": len(ids), "done": states.count("done"), "cancelled": states.count("cancelled"),
            "other": len(states) - states.count("done") - states.count("cancelled"),
            "threads_before": threads_before, "threads_after": threads_after, "temporary_files": len(temporary),
            "uploads_left": len(uploads), "rss_growth": round(growth, 3),
            "ok": len(ids) == jobs and set(states) <= {"done", "cancelled"} and threads_after <= threads_before
            and not temporary and not uploads and growth < 0.10}


def sigterm(server: Server) -> dict[str, Any]:
    job = server.submit(LONG).json()["id"]
    server.wait_running(job)
    streams: list[str] = []
    t = threading.Thread(target=_follow, args=(server.url, job, streams))
    t.start()  # an open event stream must not hold the stop up
    time.sleep(0.3)
    t0 = time.perf_counter()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        code = None
    seconds = time.perf_counter() - t0
    t.join(10)
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is -SIGTERM. The proof of a
    # clean stop is the cancelled job's image, written when the runner stopped it, and no temporary file.
    kept = (server.data / "results" / f"{job}.png").is_file()
    temporary = [p for p in server.data.rglob("*") if p.name.endswith(".tmp")]
    return {"exit_code": code, "seconds": round(seconds, 2), "image_kept": kept, "temporary_files": len(temporary),
            "stream_ended": streams != [], "ok": code in (0, -signal.SIGTERM) and seconds < 10 and kept
            and not temporary}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=600, help="stop after this many seconds (default 600)")
    ns = p.parse_args()
    timer = threading.Timer(ns.budget, lambda: os._exit(3))  # the run stops itself, whatever happens
    timer.daemon = True
    timer.start()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        server = Server(Path(tmp) / "data")
        try:
            server.wait(server.submit({**SHORT, "iterations": "3"}).json()["id"])  # warm-up: weights, kernels
            idle = statistics.median([p95(health_latencies(server, 50)) for _ in range(3)])
            report = {"burst": burst(server)}
            time.sleep(1.0)
            report["fan_out"] = fan_out(server, idle)
            report["drops"] = drops(server)
            report["churn"] = churn(server)
            report["sigterm"] = sigterm(server)
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
    for name, result in report.items():
        print(f"{name:8s} {json.dumps(result)}")
    ok = all(r["ok"] for r in report.values())
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
