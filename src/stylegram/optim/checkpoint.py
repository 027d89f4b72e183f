"""Checkpoints of a Gatys optimisation: save every N evaluations, resume later to the same image.

A checkpoint holds the image being optimised, the optimiser's whole state (for L-BFGS its curvature history),
the number of evaluations done, the best image so far, the coarse-to-fine stage, and the options. It is taken
only between optimiser iterations, never inside a line search, so that a resumed run repeats exactly what an
uninterrupted run with the same checkpoint cadence does. Files are written atomically and read back with
``weights_only=True`` (tensors and plain containers only).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylegram.core.atomic import atomic_write_bytes
from stylegram.core.errors import StylegramError

FORMAT = "stylegram-gatys-checkpoint-1"


class CheckpointError(StylegramError):
    """A checkpoint that cannot be used: missing, damaged, or made with other options."""


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often to save; ``stage`` is the coarse-to-fine stage being run (0 for a single scale)."""

    path: Path
    every: int
    stage: int = 0


def save(path: Path, state: dict[str, Any], fmt: str = FORMAT) -> None:
    """Write ``state`` (tensors and plain containers) atomically, tagged with its format ``fmt``."""
    buffer = io.BytesIO()
    torch.save({"format": fmt, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike[str], options: dict[str, Any] | None = None, *, fmt: str = FORMAT,
         what: str = "optimisation") -> dict[str, Any]:
    """The saved state of format ``fmt``; with ``options`` (a to_dict() of the run's options), refuses a file made
    with other ones. ``what`` names the kind of checkpoint in messages."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {file}")
    try:
        state = torch.load(file, weights_only=True, map_location="cpu")
    except Exception as exc:  # truncated zip, refused pickle, …
        raise CheckpointError(f"{file}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise CheckpointError(f"{file}: not a stylegram {what} checkpoint")
    if options is not None:
        check(state, options, str(file))
    return state


def identity(options: dict[str, Any]) -> str:
    """The options as saved in a checkpoint: canonical JSON, compared on resume by :func:`check`."""
    return json.dumps(options, sort_keys=True)


def check(state: dict[str, Any], options: dict[str, Any], name: str = "the checkpoint") -> None:
    """Refuse a state saved with other options than ``options``."""
    saved = json.loads(state["options"])
    options = json.loads(json.dumps(options, sort_keys=True))  # tuples become lists, as they were saved
    differing = sorted(k for k in set(saved) | set(options) if saved.get(k) != options.get(k))
    if differing:
        raise CheckpointError(f"{name} was made with other options ({', '.join(differing)}); resume with the same ones")
