"""Helpers of the web tests: tiny images, uploads, submitting a job and following it."""

from __future__ import annotations

import io
import json
import time
import warnings
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note that httpx2 will replace httpx
    from fastapi.testclient import TestClient


BASE = "http://127.0.0.1:8000"
TINY = {"size": "32", "iterations": "4", "precision": "float32"}


def png(seed: int = 0, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """A small image of smooth colour fields (a photo-like input: noise would make the style loss huge)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = np.stack([np.sin(xx * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)], -1)
    rgb = rgb * 0.4 + 0.5 + 0.1 * np.cos(yy * rng.uniform(2, 9))[..., None]
    out = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(out, fmt)
    return out.getvalue()


def upload(content: bytes | None = None, styles: list[bytes] | None = None,
           names: tuple[str, ...] = ("photo.png", "painting.png")) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [("content", (names[0], content if content is not None else png(0), "image/png"))]
    for i, s in enumerate(styles if styles is not None else [png(1)]):
        files.append(("style", (names[min(i + 1, len(names) - 1)], s, "image/png")))
    return files


def submit(client: TestClient, data: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    r = client.post("/api/jobs", files=kw.pop("files", None) or upload(), data={**TINY, **(data or {})})
    assert r.status_code == 202, r.text
    return dict(r.json())


def events(client: TestClient, job_id: str, last: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
    """Every event of the job's stream (until it ends) as (id, type, data)."""
    headers = {"last-event-id": str(last)} if last is not None else {}
    out: list[tuple[int, str, dict[str, Any]]] = []
    with client.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        for line in r.iter_lines():
            if not line:
                if "data" in block:
                    out.append((int(block["id"]), block["event"], json.loads(block["data"])))
                block = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                block[key] = value
    return out


def wait_for(client: TestClient, job_id: str, test: Any, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the job until ``test(view)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        view = dict(client.get(f"/api/jobs/{job_id}").json())
        if test(view):
            return view
        assert time.monotonic() < deadline, f"timed out waiting; last state {view}"
        time.sleep(0.05)


def finished(view: dict[str, Any]) -> bool:
    return view["state"] in ("done", "failed", "cancelled")


