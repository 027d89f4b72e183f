"""The weights cache directory and its sha256 table, for :mod:`stylegram.weights`.

Half-gigabyte weight files are hashed once: ``<cache>/sha256-cache.json`` remembers each file's sha256 under its
resolved path, with its size and modification time, and a changed file is hashed again. The table is only a
cache: a read-only cache directory never stops a load. Import :func:`cache_dir` from :mod:`stylegram.weights`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from stylegram.core.atomic import atomic_open
from stylegram.weights.format import WeightsError, first_line

HASH_TABLE = "sha256-cache.json"


def cache_dir() -> Path:
    """``$STYLEGRAM_CACHE``, else ``$XDG_CACHE_HOME/stylegram``, else ``~/.cache/stylegram``; not created."""
    if explicit := os.environ.get("STYLEGRAM_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "stylegram"


def sha256_file(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def cached_sha256(file: Path) -> str:
    """sha256 of ``file``, remembered by (path, size, mtime) so that half-gigabyte files are hashed once.

    A file that cannot be read (permissions, vanished) is a one-line WeightsError naming it.
    """
    try:
        entry = _read_hash_table().get(str(file.resolve()))
        if isinstance(entry, dict) and entry.get("stamp") == _stamp(file):
            recorded = entry.get("sha256")
            if isinstance(recorded, str):
                return recorded
        digest = sha256_file(file)
    except OSError as exc:
        raise WeightsError(f"{file}: cannot read weights ({first_line(exc)})") from exc
    remember_sha256(file, digest)
    return digest


def remember_sha256(file: Path, digest: str) -> None:
    # Only a cache: a read-only cache directory (or a file gone since) must not stop a load, so failures are ignored.
    with contextlib.suppress(OSError):
        table = _read_hash_table()
        table[str(file.resolve())] = {"stamp": _stamp(file), "sha256": digest}
        with atomic_open(cache_dir() / HASH_TABLE) as out:
            out.write(json.dumps(table, indent=1, sort_keys=True).encode())


def _read_hash_table() -> dict[str, Any]:
    try:
        table = json.loads((cache_dir() / HASH_TABLE).read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def _stamp(file: Path) -> list[int]:
    stat = file.stat()
    return [stat.st_size, stat.st_mtime_ns]
