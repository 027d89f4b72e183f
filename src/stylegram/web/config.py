"""The server's own options (``stylegram serve`` derives its flags from them): where it listens, who may call it,
and the limits every request is held to.

Kept free of FastAPI so that the command line can build its parser without the ``web`` extra installed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from stylegram.core.options import Options, option

MB = 1 << 20


def format_bytes(n: float) -> str:
    """``n`` bytes for a message: ``12.3 MB``, or ``45 kB`` below a tenth of a megabyte."""
    return f"{n / MB:.3g} MB" if n >= MB / 10 else f"{n / 1024:.3g} kB"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) only reaches this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerOptions(Options):
    """How ``stylegram serve`` listens and what it accepts."""

    host: str = option("127.0.0.1", "address to listen on; anything but loopback needs --token")
    port: int = option(8000, "port to listen on", min=0, max=65535)
    token: str | None = option(None, "require 'Authorization: Bearer TOKEN' on every API call (also read from "
                               "the STYLEGRAM_TOKEN environment variable, which keeps it out of the process list)")
    max_size: int = option(1024, "largest output side a client may ask for, in pixels", min=16, max=16384)
    max_iterations: int = option(1000, "most loss evaluations a client may ask for (per stage)", min=1)
    queue: int = option(8, "jobs held at once, running and waiting; more are refused with 429 and Retry-After",
                        min=1, max=10000)
    max_body_mb: float = option(50.0, "largest request body in MB (413 above)", above=0)
    max_file_mb: float = option(20.0, "largest uploaded image file in MB", above=0)
    max_megapixels: float = option(40.0, "most pixels an uploaded image may have, read from its header before "
                                   "decoding (decompression bombs)", above=0, max=100)
    keep_results: int = option(50, "finished jobs kept (oldest removed first)", min=1)
    keep_minutes: float = option(120.0, "minutes a finished job's result is kept", above=0)
    data_dir: str | None = option(None, "folder for uploads and results (default: a new temporary folder, "
                                  "removed when the server stops)")
    devices: tuple[str, ...] | None = option(None, "devices to run jobs on, one worker each (cpu, cuda:0,cuda:1 "
                                             "…; default: the best device here)")
    allowed_hosts: tuple[str, ...] | None = option(
        None, "extra host names the Host header may carry (the public name behind a reverse proxy); on "
        "loopback only localhost names are accepted otherwise (DNS rebinding)")
    models_dir: str | None = option(None, "folder of feed-forward model files offered as kinds besides gatys")

    def problems(self) -> Iterator[str]:
        if not is_loopback(self.host) and not self.token:
            yield (f"listening on {self.host} lets other machines reach the server: give --token (or set "
                   "STYLEGRAM_TOKEN), or listen on 127.0.0.1 behind a reverse proxy")
        if self.token is not None and len(self.token) < 16:
            yield ("token must be at least 16 characters "
                   "(make one with: python -c 'import secrets; print(secrets.token_urlsafe())')")

    @property
    def max_body(self) -> int:
        return int(self.max_body_mb * MB)

    @property
    def max_file(self) -> int:
        return int(self.max_file_mb * MB)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)
