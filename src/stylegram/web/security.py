"""The checks every request passes before it reaches a route: safe by default for a server on 127.0.0.1.

A page on any web site can make the visitor's browser send requests to ``http://127.0.0.1:8000`` (a form POST
needs no CORS pre-flight), and a DNS name that re-binds to 127.0.0.1 makes them same-origin for that page. So:

* the Host header must name this server (loopback names, or ``allowed_hosts``): defeats DNS re-binding;
* a request whose ``Origin`` is another origin, or that a browser marks ``Sec-Fetch-Site: cross-site`` or
  ``same-site`` (another port on localhost is "same-site"), is refused on the API; the page itself may still be
  opened from a link;
* with a token, every API call carries ``Authorization: Bearer <token>``;
* a body without Content-Length, or longer than the limit, is refused before it is read (411, 413);
* every response carries a content-security policy of ``'self'`` and no CORS header is ever sent.

A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware, which would buffer the event streams.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stylegram.web.config import ServerOptions, format_bytes, is_loopback

CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's /docs page loads Swagger UI from a CDN: that page alone may, and it holds no data (offline it is blank;
# /openapi.json is always there).
DOCS_CSP = ("default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
            "style-src 'self' https://cdn.jsdelivr.net; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "connect-src 'self'; frame-ancestors 'none'")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY"), (b"cross-origin-resource-policy", b"same-origin"),
           (b"cross-origin-opener-policy", b"same-origin")]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
BODY_METHODS = ("POST", "PUT", "PATCH")
Refusal = tuple[int, str, list[tuple[bytes, bytes]]]  # status, message, extra headers


def host_name(netloc: str) -> str:
    """The host part of ``host[:port]`` (``[::1]:8000`` → ``::1``), lower case."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class Guard:
    """ASGI middleware applying the checks above to HTTP requests."""

    def __init__(self, app: ASGIApp, options: ServerOptions) -> None:
        self.app, self.options = app, options
        self.hosts = _allowed_hosts(options.host, options.allowed_hosts or ())
        self.token = options.token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        refusal = self.refusal(scope["method"], path, headers)
        if refusal is not None:
            status, message, extra = refusal
            await _send_json(send, status, message, extra)
            return
        csp = (DOCS_CSP if path in ("/docs", "/redoc") else CSP).encode()

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", csp), *HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> Refusal | None:
        """(status, message, headers) of a refused request, or None to let it through."""
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            return 421, f"this server does not answer to the host name {host_name(host)!r}", []
        api = path.startswith("/api/") or path == "/openapi.json"
        if api and _cross_site(headers, host):
            return 403, "cross-site requests are refused: open the page from this server", []
        if api and self.token is not None and not _has_token(headers.get("authorization", ""), self.token):
            return 401, "this server needs 'Authorization: Bearer <token>'", [(b"www-authenticate", b"Bearer")]
        if method in BODY_METHODS:
            length = headers.get("content-length")
            if length is None or not length.isdigit():
                return 411, "send the request with a Content-Length header", []
            if int(length) > self.options.max_body:
                return 413, f"the request is {format_bytes(int(length))}, more than the server's limit of " \
                            f"{format_bytes(self.options.max_body)}", []
        return None


def _allowed_hosts(bind: str, extra: Iterable[str]) -> frozenset[str] | None:
    """Host names accepted in the Host header: None (any) when listening beyond loopback without a list."""
    names = {host_name(h) for h in extra}
    bound = bind.strip("[]").lower()
    if is_loopback(bind):
        return frozenset({*LOOPBACK_NAMES, bound, *names})
    return frozenset({*names, bound}) if names else None


def _cross_site(headers: dict[str, str], host: str) -> bool:
    origin = headers.get("origin")
    if origin is not None:
        # "null" comes from sandboxed frames and file:// pages: never this server's page.
        return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()
    return headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def _has_token(authorization: str, token: str) -> bool:
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


async def _send_json(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"content-security-policy", CSP.encode()), *HEADERS, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
