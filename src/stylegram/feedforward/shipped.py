"""Models shipped inside the package (``stylegram/feedforward/models/NAME.safetensors``), found by name.

``stylegram upscale`` without ``--model`` uses :data:`DEFAULT_SUPERRES` when this build ships it, and ``--model``
takes a shipped name as well as a path. A model is shipped only when it beats bicubic on the held-out photos
(``stylegram eval-sr``); its training record is in the file's metadata (``stylegram info``-style JSON under the
``stylegram`` key), and the README (Super-resolution) gives the command, iterations, time and scores.
"""

from __future__ import annotations

import os
from pathlib import Path

from stylegram.core.errors import UsageError

DEFAULT_SUPERRES = "sr4"
SUFFIX = ".safetensors"
MODELS = Path(__file__).with_name("models")  # package data beside this module (setuptools package-data)


def shipped_models() -> dict[str, Path]:
    """Name → file of every model in the package's ``models`` folder (none in a build that ships none)."""
    folder = MODELS
    if not folder.is_dir():
        return {}
    return {p.name.removesuffix(SUFFIX): p for p in sorted(folder.glob(f"*{SUFFIX}")) if p.is_file()}


def resolve_model(name: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    """A path as given (when it exists or looks like a file), a shipped model's file for its name, or for None
    the default super-resolution model; UsageError when the build ships no such model."""
    shipped = shipped_models()
    if name is None:
        if DEFAULT_SUPERRES not in shipped:
            raise UsageError("this build ships no super-resolution model: give one with --model "
                             "(train it with `stylegram train-sr`)")
        return shipped[DEFAULT_SUPERRES]
    text = os.fspath(name)
    if os.path.exists(text) or os.sep in text or "." in os.path.basename(text):
        return name
    if text in shipped:
        return shipped[text]
    known = f" (shipped: {', '.join(shipped)})" if shipped else ""
    raise UsageError(f"model not found: {text} is neither a file nor a shipped model{known}")
