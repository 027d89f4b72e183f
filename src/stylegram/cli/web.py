"""``stylegram serve``: the web page and HTTP API (:mod:`stylegram.web`) on uvicorn.

The flags come from :class:`stylegram.web.config.ServerOptions`; FastAPI and uvicorn (the ``web`` extra) are
imported only when the command runs, so every other command works without them.
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

from stylegram.cli.common import EXIT_OK, add_option_flags, options_from, say
from stylegram.core.errors import UsageError
from stylegram.web.config import ServerOptions, is_loopback

GRACE = 5  # seconds open requests get to finish once the server is asked to stop


def register(sub: argparse._SubParsersAction[Any]) -> None:
    s = sub.add_parser("serve", help="a web page and an HTTP API for style transfer on this machine",
                       description="Serve the stylegram page and API (OpenAPI docs at /docs). Listens on "
                                   "127.0.0.1 unless told otherwise; any other address needs --token.")
    add_option_flags(s, ServerOptions)
    s.add_argument("--quiet", action="store_true", help="no request log")
    s.set_defaults(func=cmd_serve)


def _check_port(host: str, port: int) -> None:
    """Refuse, before the app is built, an address that cannot be listened on (a port in use, a foreign host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a closing socket is no obstacle
        try:
            s.bind((host.strip("[]"), port))
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port}: {(e.strerror or str(e)).lower()}; choose another "
                             "--port or --host") from None


def cmd_serve(ns: argparse.Namespace) -> int:
    if ns.token is None and os.environ.get("STYLEGRAM_TOKEN"):
        ns.token = os.environ["STYLEGRAM_TOKEN"]
    options = options_from(ns, ServerOptions())
    try:
        import python_multipart  # noqa: F401  (FastAPI reads uploads with it)
        import uvicorn

        from stylegram.web.app import create_app
    except ImportError as e:
        raise UsageError(f"stylegram serve needs the web extra ({e.name} is missing): "
                         "pip install 'stylegram[web]'") from None
    _check_port(options.host, options.port)
    app = create_app(options)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.hub.close()  # event streams end now, so that stopping does not wait out the grace period
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=options.host, port=options.port, timeout_graceful_shutdown=GRACE,
                            log_level="warning" if ns.quiet else "info", access_log=not ns.quiet)
    host = f"[{options.host}]" if ":" in options.host else options.host
    where = "this machine only" if is_loopback(options.host) else "the network; every API call needs the token"
    say(ns, f"stylegram: serving http://{host}:{options.port}/ to {where} (Ctrl-C stops)", force=True)
    Server(config).run()
    return EXIT_OK
