"""The record every output carries: which program, method, options, inputs and weights made it.

Records are plain JSON-ready dicts, embedded in PNG outputs (and in a sidecar for other formats) by
:func:`stylegram.core.images.save_image`, and read back by ``stylegram info``.
"""

from __future__ import annotations

import hashlib
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch


def stylegram_version() -> str:
    try:
        return version("stylegram")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+unknown"


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """A file as a record names it: its base name (never the full path) and checksum."""
    return {"file": Path(path).name, "sha256": sha256_of(path)}


def new_record(method: str, device: torch.device | str | None = None, **fields: Any) -> dict[str, Any]:
    """The common head of a record: program version, method, torch version and device, then ``fields``."""
    head: dict[str, Any] = {"stylegram": stylegram_version(), "method": method, "torch": torch.__version__}
    if device is not None:
        head["device"] = str(device)
    return {**head, **fields}
