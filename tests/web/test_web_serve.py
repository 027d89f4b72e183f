"""``stylegram serve`` as a user starts it: a process on a loopback port that answers, refuses a port in use, and
stops cleanly on SIGTERM, removing the temporary folder it made."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("uvicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_on_loopback_and_stops_on_sigterm(tmp_path: Path, weights_cache: str) -> None:
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stylegram", "serve", "--port", str(port), "--devices", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/").text.startswith("<!doctype html>")
        folders = list(tmp_path.glob("stylegram-serve-*"))
        assert len(folders) == 1  # its data folder, made at start
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    assert re.search(rf"serving http://127\.0\.0\.1:{port}/ to this machine only", output)
    assert "Application shutdown complete" in output and "Traceback" not in output
    assert not folders[0].exists()


def test_serve_refuses_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    from stylegram.cli.main import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "address already in use" in err
