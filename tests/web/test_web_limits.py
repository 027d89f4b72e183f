"""Every limit and error path of the API: bodies and files too large, decompression bombs, wrong types, broken
images, bad options, server caps, paths in file names, cross-site requests, the Host header, the token."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from web_helpers import TINY, finished, png, submit, upload, wait_for

from stylegram.core.errors import OptionsError
from stylegram.gatys.options import GatysOptions
from stylegram.web.config import ServerOptions

TOKEN = "s3cret-token-of-enough-length"


def _post(client: Any, files: Any = None, **data: str) -> Any:
    return client.post("/api/jobs", files=files or upload(), data={**TINY, **data})


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height pixels but holds almost no data: a decompression bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_body_over_the_limit_is_413_and_one_without_length_is_411(make_client: Any) -> None:
    client = make_client(max_body_mb=0.05)
    r = _post(client, upload(png(0), [b"\0" * 60_000]))
    assert r.status_code == 413 and "more than the server's limit of 51.2 kB" in r.json()["detail"]
    chunked = client.post("/api/jobs", content=iter([b"x" * 10]), headers={"content-type": "multipart/form-data"})
    assert chunked.status_code == 411


def test_a_file_over_the_limit_is_413(make_client: Any) -> None:
    client = make_client(max_file_mb=0.01)
    r = _post(client, upload(png(0), [b"\0" * 12_000]))
    assert r.status_code == 413 and r.json()["detail"] == "'painting.png' is 11.7 kB, more than the limit of 10.2 kB"


def test_a_decompression_bomb_is_refused_from_its_header(make_client: Any) -> None:
    client = make_client(max_megapixels=1)
    bomb = _png_header(10000, 10000)
    assert len(bomb) < 200
    r = _post(client, upload(bomb))
    assert r.status_code == 422
    assert "10000x10000" in r.json()["detail"] and "before decoding" in r.json()["detail"]
    huge = _post(client, upload(png(0), [_png_header(100000, 100000)]))  # past Pillow's own ceiling too
    assert huge.status_code == 422 and "style 1 'painting.png'" in huge.json()["detail"]


@pytest.mark.parametrize(("data", "expected"), [
    (png(0, fmt="GIF"), "is a GIF image; send PNG, JPEG or WebP"),
    (b"just some text", "is not an image"),
    (png(0)[:200], "truncated or corrupt"),
    (b"", "is empty"),
])
def test_images_of_the_wrong_type_or_broken_are_422_naming_the_clients_file(client: Any, data: bytes,
                                                                           expected: str) -> None:
    r = _post(client, upload(data))
    assert r.status_code == 422 and expected in r.json()["detail"], r.text
    assert "content 'photo.png'" in r.json()["detail"]
    assert str(client.app.state.folder) not in r.json()["detail"]  # no server path in a message
    assert list((Path(client.app.state.folder) / "uploads").glob("*")) == []


def test_jpeg_and_webp_are_accepted(client: Any) -> None:
    job = submit(client, files=upload(png(0, fmt="JPEG"), [png(1, fmt="WEBP")], ("a.jpg", "b.webp")))
    assert wait_for(client, job["id"], finished)["state"] == "done"


def test_a_bad_option_is_422_with_the_librarys_own_message(client: Any) -> None:
    with pytest.raises(OptionsError) as library:
        GatysOptions(content_weight=-1.0)
    r = _post(client, content_weight="-1")
    assert r.status_code == 422 and r.json()["detail"] == str(library.value)
    assert _post(client, iterations="many").json()["detail"] == "--iterations takes an integer, got 'many'"


@pytest.mark.parametrize(("data", "expected"), [
    ({"size": "2048"}, "size must be at most 1024 on this server, got 2048"),
    ({"iterations": "5000"}, "iterations must be at most 1000 on this server"),
    ({"stage_iterations": "10,9999"}, "stage_iterations must be at most 1000 on this server, got 10,9999"),
    ({"init": "/etc/passwd"}, "init must be one of palette, content, noise, style on this server"),
    ({"model": "vgg19"}, "model must be one of"),
    ({"weights": "/etc/passwd"}, "not offered by this server: weights"),
    ({"content_masks": "/tmp/a.png"}, "not offered by this server: content_masks"),
    ({"colour": "red"}, "unknown option(s): colour"),
    ({"kind": "magic"}, "unknown kind 'magic'; choose one of gatys"),
])
def test_server_caps_and_narrowed_choices_are_422(client: Any, data: dict[str, str], expected: str) -> None:
    r = _post(client, **data)
    assert r.status_code == 422 and expected in r.json()["detail"], r.text


def test_the_number_and_names_of_files_are_checked(client: Any) -> None:
    assert "at least" not in _post(client, upload(png(0), [])).json()["detail"]
    assert _post(client, upload(png(0), [])).json()["detail"] == "gatys takes 1 to 4 style image(s) (field " \
                                                                    "'style'), got 0"
    five = _post(client, upload(png(0), [png(i) for i in range(5)]))
    assert five.status_code == 422 and "got 5" in five.json()["detail"]
    nothing = client.post("/api/jobs", files=[("style", ("s.png", png(1), "image/png"))], data=TINY)
    assert nothing.status_code == 422 and "exactly one content image" in nothing.json()["detail"]
    extra = _post(client, [*upload(), ("mask", ("m.png", png(2), "image/png"))])
    assert extra.status_code == 422 and "unexpected file field(s): mask" in extra.json()["detail"]


def test_a_path_in_a_file_name_never_reaches_the_disk(client: Any, tmp_path: Path) -> None:
    names = ("../../../escaped.png", "..\\..\\also.png")
    job = submit(client, files=upload(png(0), [png(1)], names))
    view = wait_for(client, job["id"], finished)
    assert view["state"] == "done" and view["content"] == "escaped.png" and view["styles"] == ["also.png"]
    assert not list(tmp_path.rglob("escaped.png")) and not list(tmp_path.parent.glob("*escaped*"))
    folder = Path(client.app.state.folder)
    for path in folder.rglob("*"):
        assert path.is_dir() or path.stem == job["id"] or len(path.stem) == 32, path  # server-made names only


def test_unexpected_errors_are_500_with_a_generic_message(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    def broken(*args: Any, **kw: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("stylegram.web.app.store_image", broken)  # a bug, injected
    quiet = TestClient(client.app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    r = quiet.post("/api/jobs", files=upload(), data=TINY)
    assert r.status_code == 500 and "secret" not in r.text and "unexpected error" in r.json()["detail"]


# ------------------------------------------------------------------------------------------------ security


def test_the_host_header_must_name_this_server(client: Any) -> None:
    assert client.get("/api/info", headers={"host": "evil.example:8000"}).status_code == 421
    assert client.get("/", headers={"host": "rebound.example"}).status_code == 421
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get("/api/health", headers={"host": host}).status_code == 200


def test_an_allowed_public_name_is_accepted_behind_a_proxy(make_client: Any) -> None:
    client = make_client(allowed_hosts=("art.example.org",))
    assert client.get("/api/health", headers={"host": "art.example.org"}).status_code == 200


def test_cross_site_requests_are_refused_but_the_page_may_be_linked(client: Any) -> None:
    evil = {"origin": "http://evil.example"}
    assert _post(client, **{}).status_code == 202  # no Origin (curl): fine
    r = client.post("/api/jobs", files=upload(), data=TINY, headers=evil)
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    assert client.get("/api/jobs", headers={"origin": "http://localhost:3000"}).status_code == 403  # other port
    assert client.get("/api/jobs", headers={"origin": "null"}).status_code == 403
    assert client.get("/api/jobs", headers={"origin": "http://127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/info", headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert client.get("/api/info", headers={"sec-fetch-site": "same-site"}).status_code == 403
    assert client.get("/api/info", headers={"sec-fetch-site": "same-origin"}).status_code == 200
    assert client.get("/", headers={"sec-fetch-site": "cross-site"}).status_code == 200  # a link to the page


def test_no_cors_and_a_self_only_content_security_policy(client: Any) -> None:
    pre = client.options("/api/jobs", headers={"origin": "http://127.0.0.1:8000",
                                               "access-control-request-method": "POST"})
    assert not any(h.startswith("access-control-") for h in pre.headers)
    for path in ("/", "/api/info", "/static/app.js"):
        r = client.get(path)
        assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


def test_with_a_token_every_api_call_needs_it(make_client: Any) -> None:
    client = make_client(token=TOKEN)
    r = client.get("/api/health")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/info", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/info", headers={"authorization": f"Bearer {TOKEN}"}).json()["token_required"] is True
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200  # no data there


def test_listening_beyond_loopback_needs_a_long_token() -> None:
    with pytest.raises(OptionsError, match="give --token"):
        ServerOptions(host="0.0.0.0")
    with pytest.raises(OptionsError, match="at least 16 characters"):
        ServerOptions(host="0.0.0.0", token="short")
    assert ServerOptions(host="0.0.0.0", token=TOKEN).token == TOKEN
    assert ServerOptions(host="::1").token is None  # IPv6 loopback


def test_serve_refuses_to_start_on_the_network_without_a_token(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from stylegram.cli.main import main

    monkeypatch.delenv("STYLEGRAM_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylegram: error: ") and "--token" in err and "\n" not in err
    assert main(["serve", "--max-size", "0"]) == 2
    assert "max-size must be at least 16" in capsys.readouterr().err
