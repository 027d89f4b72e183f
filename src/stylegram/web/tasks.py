"""The kinds of job the server offers, each a thin adapter onto one library use case.

A kind names its options class (the form and the validation come from it), how many style images it takes,
and how to turn a checked request into a :class:`Task`: an object whose constructor has done every check
(``total``, ``notes``) and whose ``run(on_step)`` does the work and writes the output with its record. For
``gatys`` that object is :class:`stylegram.gatys.stylize.StylizeJob` itself, so the web app runs exactly what
``stylegram stylize`` runs; a feed-forward model runs :class:`stylegram.feedforward.apply.ApplyJob`, as
``stylegram apply`` does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from stylegram.core import images
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep
from stylegram.core.options import Options
from stylegram.gatys.options import GatysOptions
from stylegram.web.uploads import StoredImage


class Outcome(Protocol):
    """What a task's run returns: whether it stopped early (asked to) and whether its loss diverged."""

    @property
    def stopped(self) -> bool: ...


class Task(Protocol):
    """A prepared, checked job of one kind."""

    @property
    def total(self) -> int: ...

    @property
    def notes(self) -> list[str]: ...

    def run(self, on_step: OnStep | None = None) -> Any: ...


@dataclass(frozen=True)
class Request:
    """A client's checked request: the kind, its options, and the stored uploads."""

    kind: Kind
    options: Options
    content: StoredImage
    styles: Sequence[StoredImage]

    def uploads(self) -> list[Path]:
        return [self.content.path, *(s.path for s in self.styles)]

    def inputs(self) -> dict[str, Any]:
        """The inputs as the output's record names them: the client's file names and checksums."""
        return {"content": self.content.describe(), "styles": [s.describe() for s in self.styles]}


Prepare = Callable[[Request, Path, torch.device], Task]


@dataclass(frozen=True)
class Kind:
    """One kind of job the server runs."""

    name: str
    options: type[Options]
    min_styles: int
    max_styles: int
    prepare: Prepare
    description: str

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        """The named sets of option values the library offers for this kind (``PRESETS`` beside its options
        class, e.g. light / balanced / bold), as JSON-ready values; none when there is no such table."""
        table = getattr(sys.modules[self.options.__module__], "PRESETS", None) or {}
        return {str(name): {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
                for name, values in table.items()}


def _prepare_gatys(request: Request, output: Path, device: torch.device) -> Task:
    from stylegram.gatys.stylize import StylizeJob

    assert isinstance(request.options, GatysOptions)
    content = images.load_image(request.content.path)
    styles = [images.load_image(s.path) for s in request.styles]
    return StylizeJob(content, styles, request.options, output, device=device, inputs=request.inputs())


GATYS = Kind("gatys", GatysOptions, 1, 4, _prepare_gatys,
             "Gatys et al.: optimise the image itself (slow, any painting)")


class _ApplyTask:
    """:class:`stylegram.feedforward.apply.ApplyJob` on the one uploaded photo (its events count images)."""

    def __init__(self, job: Any) -> None:
        self.job, self.total = job, len(job.items)
        self.notes = [f"{name}: {why}" for name, why in job.skipped]

    def run(self, on_step: OnStep | None = None) -> Any:
        return self.job.run(on_step)


def _feedforward(path: Path) -> Kind:
    from stylegram.feedforward.apply import ApplyJob, ApplyOptions
    from stylegram.feedforward.model import read_model_file

    info = read_model_file(path)[1]  # a model file that cannot be used is refused when the server starts
    what = "super-resolution" if info.task == "superres" else f"style of {info.style_image or 'its painting'}"
    description = f"feed-forward model ({what}; fast)"

    def prepare(request: Request, output: Path, device: torch.device) -> Task:
        assert isinstance(request.options, ApplyOptions)
        return _ApplyTask(ApplyJob(path, [request.content.path], output, request.options, device=device))

    return Kind(path.stem, ApplyOptions, 0, 0, prepare, description)


def kinds(models_dir: str | None = None) -> dict[str, Kind]:
    """The kinds this server offers: ``gatys``, and one per feed-forward model file (``*.safetensors``) in
    ``models_dir``, named after the file."""
    found = {GATYS.name: GATYS}
    if models_dir is not None:
        folder = Path(models_dir)
        if not folder.is_dir():
            raise UsageError(f"models-dir '{models_dir}' is not a folder")
        for path in sorted(folder.glob("*.safetensors")):
            if path.stem not in found:
                found[path.stem] = _feedforward(path)
    return found
