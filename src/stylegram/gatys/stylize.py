"""The use cases of Gatys transfer: PIL images or files in, an image out (:func:`stylize`), or a checked job
that writes the output with the record of how it was made (:class:`StylizeJob`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from stylegram.core import images, units
from stylegram.core.atomic import check_writable
from stylegram.core.device import resolve_device
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.record import describe_file, new_record
from stylegram.gatys import memory, multiscale, tiled
from stylegram.gatys.features import check
from stylegram.gatys.options import START_IMAGES, GatysOptions
from stylegram.gatys.run import GatysResult
from stylegram.nets.vgg import VGG
from stylegram.optim.checkpoint import load as load_checkpoint
from stylegram.weights import load_vgg


@lru_cache(maxsize=4)
def _cached_vgg(model: str, weights: str | None, pooling: str, device: str) -> VGG:
    vgg, _ = load_vgg(model, path=weights, pooling=pooling, classifier=False, device=device)  # type: ignore[arg-type]
    return vgg


ImageLike = Image.Image | str | os.PathLike[str]


def _as_image(x: ImageLike) -> Image.Image:
    return x.convert("RGB") if isinstance(x, Image.Image) else images.load_image(x)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    on_step: OnStep | None = None,
    device: str | torch.device | None = None,
    max_memory: int | str | None = None,
    **options: Any,
) -> Image.Image:
    """Stylise ``content`` with one or more ``style`` images; ``options`` are :class:`GatysOptions` fields.

    ``max_memory`` (bytes, or a size such as ``"8GB"``; default: what the device has free) is the budget above
    which a stage runs in tiles.

    >>> out = stylize("photo.jpg", "painting.jpg", size=256, iterations=200)  # doctest: +SKIP
    """
    from . import multiscale  # imported here: both build on this module

    budget = units.parse_size(max_memory) if isinstance(max_memory, str) else max_memory

    opts = GatysOptions(**options)
    style_list = [style] if isinstance(style, (Image.Image, str, os.PathLike)) else list(style)
    dev = resolve_device(device)
    vgg = _cached_vgg(opts.model, opts.weights, opts.pooling, str(dev))
    result = multiscale.run(vgg, _as_image(content), [_as_image(im) for im in style_list], opts, device=dev,
                            on_step=on_step, max_memory=budget)
    return images.to_pil(result.image)


def _check_start_file(init: str) -> None:
    """An ``init`` that names no start image must be a readable image file: say so before any long work."""
    if not Path(init).exists():
        raise UsageError(f"init must be {', '.join(START_IMAGES)} or an image file; {init!r} is none of "
                         "these (no such file)")
    images.load_image(init)


class StylizeJob:
    """A checked Gatys job that writes its output with a record: the use case behind ``stylegram stylize``.

    Construction does every check before the long work: the output path, the input images, the device, the
    stages, the checkpoint to resume, the weights, the layers and masks, and the memory plan of every stage
    (a stage that would not fit even in tiles is a UsageError naming the largest size that fits). Afterwards
    :attr:`stages`, :attr:`total` (evaluations of all stages), :attr:`done` (already done by a resumed
    checkpoint) and :attr:`notes` (which stages run in tiles) describe the run, and :meth:`run` does it.

    ``content`` and ``styles`` are files or PIL images; ``inputs`` describes PIL images in the record (files
    are described by name and checksum). ``save_every`` N also writes ``OUT_0100.png``, … as it goes.
    """

    def __init__(
        self, content: ImageLike, styles: Sequence[ImageLike], options: GatysOptions, output: str | os.PathLike[str],
        *, device: str | torch.device | None = None, max_memory: int | str | None = None,
        checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 100,
        resume: str | os.PathLike[str] | None = None, save_every: int = 0, inputs: dict[str, Any] | None = None,
    ) -> None:
        if checkpoint is not None and checkpoint_every < 1:
            raise UsageError(f"checkpoint-every must be at least 1, got {checkpoint_every}")
        if save_every < 0:
            raise UsageError(f"save-every must be >= 0, got {save_every}")
        if not styles:
            raise UsageError("give at least one style image")
        paths = [os.fspath(x) for x in (content, *styles) if not isinstance(x, Image.Image)]
        self.output = images.check_output(output, paths)
        if checkpoint is not None:
            check_writable(checkpoint, paths, "checkpoint")
        self.content, self.styles = _as_image(content), [_as_image(s) for s in styles]
        if options.init not in START_IMAGES and resume is None:
            _check_start_file(options.init)
        self.options, self.save_every = options, save_every
        self.device = resolve_device(device)
        try:
            self.stages = multiscale.plan(options)
        except ValueError as e:
            raise UsageError(str(e)) from None
        self.checkpoint = None if checkpoint is None else (Path(checkpoint), checkpoint_every)
        self.resume = None if resume is None else load_checkpoint(resume)
        self.done = 0 if self.resume is None else (
            sum(st.iterations for st in self.stages[: int(self.resume["stage"])]) + int(self.resume["count"]))
        self.total = sum(st.iterations for st in self.stages)
        self.vgg, info = load_vgg(options.model, path=options.weights, pooling=options.pooling, classifier=False,
                                  device=self.device)
        check(self.vgg, options, len(self.styles))
        budget = units.parse_size(max_memory) if isinstance(max_memory, str) else max_memory
        self.budget, self.notes = _memory_budget(options.resolved(self.device), self.content.size, self.stages,
                                                 self.device, info.arch, budget)
        described = {"content": _describe(content, 0, inputs), "styles": [
            _describe(s, i, inputs) for i, s in enumerate(styles, start=1)]}
        self.record = new_record(
            "gatys", self.device, options=options.to_dict(), inputs=described,
            weights={"id": info.source, "sha256": info.sha256}, stages=[dataclasses.asdict(st) for st in self.stages])

    def run(self, on_step: OnStep | None = None) -> GatysResult:
        """Optimise and write the output (atomically, with the record); returns the result.

        A stopped run (``on_step`` returned True) still writes its latest image; a diverged one writes the best
        image before the loss became NaN or infinite, and says so in the record (``diverged``).
        """

        def step(event: StepEvent) -> bool | None:
            self._save_progress(event)
            return on_step(event) if on_step is not None else None

        result = multiscale.run(self.vgg, self.content, self.styles, self.options, device=self.device,
                                on_step=step if self.save_every or on_step else None,
                                checkpoint_to=self.checkpoint, resume=self.resume, max_memory=self.budget)
        self.record.update(options=result.options.to_dict(), iterations=result.iterations, losses=result.losses,
                           seconds=round(result.elapsed, 2), tiles=result.tiles, interrupted=result.stopped,
                           diverged=result.diverged)
        images.save_image(images.to_pil(result.image), self.output, self.record)
        return result

    def _save_progress(self, event: StepEvent) -> None:
        every = self.save_every
        if not every or event.iteration % every or event.iteration >= event.total:
            return
        # Stages restart their count, and their images differ in size: name each stage's saves apart.
        stage = f"s{event.stage + 1}_" if event.stages > 1 else ""
        out = self.output
        path = out.with_name(f"{out.stem}_{stage}{event.iteration:04d}{out.suffix}")
        images.save_image(images.to_pil(event.image()), path, {**self.record, "iterations": event.iteration})


def _describe(x: ImageLike, index: int, given: dict[str, Any] | None) -> Any:
    if not isinstance(x, Image.Image):
        return describe_file(x)
    if given is None:
        return {"image": f"in-memory image {index}"}
    return given["content"] if index == 0 and "content" in given else given.get("styles", [None] * 8)[index - 1]


def _memory_budget(options: GatysOptions, size: tuple[int, int], stages: Sequence[multiscale.Stage],
                   device: torch.device, arch: str, budget: int | None) -> tuple[int | None, list[str]]:
    """The memory budget and one note per tiled stage; refuses, before the first evaluation, a run that would
    not fit even in tiles, and names a size that fits.

    The estimate counts the weights, though they are loaded by now: against the free memory that errs on the
    safe side by ~59 MB, and against ``max_memory`` it is what the user asked to bound.
    """
    budget = budget if budget is not None else memory.available(device)
    notes = []
    for stage in reversed(stages):  # the largest first: the one a refusal should name
        staged = options.replace(size=stage.size, iterations=stage.iterations)
        setup = memory.plan(staged, size, budget, arch=arch)
        if setup is None:
            assert budget is not None  # plan() never refuses an unknown budget
            need = memory.estimate(staged, size, arch=arch).total
            fits = memory.largest_size(options, size, budget, iterations=stage.iterations, arch=arch)
            advice = (f"the largest size that fits is --size {fits}" if fits is not None
                      else "no size fits (the weights alone need more)")
            what = f"--size {options.size}" + (f" (its {stage.size} px stage)" if stage.size != options.size else "")
            raise UsageError(f"{what} needs about {units.format_size(need)} at its peak, more than "
                             f"the {units.format_size(budget)} available, even in tiles; {advice}, or raise "
                             "--max-memory")
        if setup.tiling is not None:
            h, w = memory.output_shape(size, stage.size)
            n = len(tiled.boxes(h, w, setup.tiling))
            notes.append(f"{w}×{h} px runs in {n} tiles (cores ≤ {setup.tiling.core} px, margins "
                         f"{setup.tiling.margin} px), L-BFGS history {setup.history}, about "
                         f"{units.format_size(setup.estimate.total)} at its peak")
    return budget, notes
