"""Fixtures of the web tests: the real app on a private data folder.

Jobs use the real offline VGG16 at 32 px: a few evaluations take well under a second once it is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from web_helpers import BASE, TestClient

from stylegram.web.app import create_app
from stylegram.web.config import ServerOptions


@pytest.fixture
def make_client(tmp_path: Path, weights_cache: str, one_thread: None) -> Iterator[Any]:
    """``make_client(**server_options)``: a TestClient on the real app, its lifespan running."""
    opened: list[Any] = []

    def make(**options: Any) -> TestClient:
        options.setdefault("data_dir", str(tmp_path / f"data{len(opened)}"))
        options.setdefault("devices", ("cpu",))
        client = TestClient(create_app(ServerOptions(**options)), base_url=BASE)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> TestClient:
    return make_client()  # type: ignore[no-any-return]
