"""Coarse-to-fine Gatys transfer for large outputs: optimise small, upsample, refine at double the size.

At 1024 px and above, a single-scale run spends most of its evaluations arranging the image's layout at full
cost per evaluation, and the style's strokes are small relative to VGG's receptive fields. Here the output is
first optimised at ``coarse_size`` or less (the target halved until it fits), and each result, upsampled
bicubically, starts the next stage at twice the size, up to the target. Each stage is one call of
:func:`stylegram.gatys.run` with ``init=`` the upsampled image; there is no second optimisation loop.

Content and style images are re-prepared from the originals at every stage's size, the style at
``style_scale`` × the stage size, so a stroke covers the same fraction of the picture at every stage
("resolution-consistent style"). Gatys et al. (2017, "Controlling perceptual factors") describe the same
coarse-to-fine scheme for high-resolution outputs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F

from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, tagged
from stylegram.gatys.options import GatysOptions
from stylegram.gatys.run import GatysResult, prepare
from stylegram.gatys.run import run as run_single
from stylegram.losses import color
from stylegram.nets.vgg import VGG
from stylegram.optim.checkpoint import Checkpointing
from stylegram.optim.checkpoint import check as check_checkpoint


@dataclass(frozen=True)
class Stage:
    """One stage of a coarse-to-fine run: the output's longest side and its loss-evaluation budget."""

    size: int
    iterations: int


def stage_sizes(options: GatysOptions) -> list[int]:
    """Longest sides, coarsest first: ``size`` halved (rounding up) until it is at most ``coarse_size``."""
    sizes = [options.size]
    if options.multiscale:
        while sizes[-1] > options.coarse_size:
            sizes.append(max(16, (sizes[-1] + 1) // 2))
    return sizes[::-1]


def plan(options: GatysOptions) -> list[Stage]:
    """The stages of a run; raises ValueError when ``stage_iterations`` does not give one count per stage.

    By default the coarsest stage gets the full ``iterations`` and each finer stage half as many as the one
    before: the coarse stage settles the layout at a quarter of the cost per evaluation, and each finer stage
    only sharpens an image that is already close (its evaluations cost four times as much). At 1024 px with
    500 iterations that is 500 evaluations at 512 px and 250 at 1024 px, about 3/4 of the compute of 500 at
    1024 px.
    """
    sizes = stage_sizes(options)
    if options.stage_iterations is not None:
        if len(options.stage_iterations) != len(sizes):
            shown = " → ".join(map(str, sizes))
            raise UsageError(f"{len(options.stage_iterations)} stage iterations for {len(sizes)} stages ({shown} px)")
        counts = list(options.stage_iterations)
    else:
        n = options.iterations
        counts = [max(1, n >> k) if n else 0 for k in range(len(sizes))]
    return [Stage(s, i) for s, i in zip(sizes, counts, strict=True)]


def upsample(image: Tensor, size: Sequence[int]) -> Tensor:
    """Bicubic resize of an RGB (1, 3, h, w) tensor to ``size`` = (H, W), clamped back into [0, 1]."""
    return F.interpolate(image, size=tuple(size), mode="bicubic", align_corners=False).clamp(0, 1)


def run(
    vgg: VGG,
    content: Image.Image,
    styles: Sequence[Image.Image],
    options: GatysOptions,
    *,
    device: torch.device | None = None,
    on_step: OnStep | None = None,
    checkpoint_to: tuple[Path, int] | None = None,
    resume: dict[str, Any] | None = None,
    max_memory: int | None = None,
) -> GatysResult:
    """Stylise ``content`` at ``options.size`` through the stages of :func:`plan`; a single stage is a plain run.

    ``max_memory`` (bytes; default: what the device has free) is each stage's budget: a stage that would not fit
    runs in tiles (:mod:`stylegram.tiled`).

    Events keep the stage's own ``iteration`` / ``total`` and add ``stage`` (0-based) and ``stages``. The result
    has the target size even when ``on_step`` stops a coarser stage (its image is then upsampled); its
    ``losses`` are those of the last stage run, ``iterations`` the evaluations of all stages.
    """
    dev = device or torch.device("cpu")
    options = options.resolved(dev)
    stages = plan(options)
    t0 = time.perf_counter()
    image: Tensor | None = None
    result: GatysResult | None = None
    count, diverged = 0, False
    first = int(resume["stage"]) if resume is not None else 0  # stages before a checkpoint's are done
    for index, stage in enumerate(stages):
        if index < first:
            continue
        stage_options = options.replace(size=stage.size, iterations=stage.iterations)
        c, s = prepare(content, styles, stage_options, dev)
        start = None if image is None else _next_start(image, c, options.original_colors)
        saving = None if checkpoint_to is None else Checkpointing(checkpoint_to[0], checkpoint_to[1], index)
        if resume is not None and index == first:
            check_checkpoint(resume, stage_options.to_dict())
        result = run_single(vgg, c, s, stage_options, init=start, on_step=tagged(on_step, index, len(stages)),
                            checkpointing=saving, resume=resume if index == first else None, max_memory=max_memory)
        image, count, diverged = result.image, count + result.iterations, diverged or result.diverged
        if result.stopped:
            break
    assert result is not None and image is not None  # plan() always gives at least one stage
    final, _ = prepare(content, [], options, dev)
    if image.shape[-2:] != final.shape[-2:]:
        image = upsample(image, final.shape[-2:])  # stopped early: still hand back the size asked for
    return dataclasses.replace(result, image=image, iterations=count, elapsed=time.perf_counter() - t0,
                               options=options, diverged=diverged)


def _next_start(previous: Tensor, content: Tensor, original_colors: bool) -> Tensor:
    start = upsample(previous, content.shape[-2:])
    # With original_colors the stage optimises a grey luminance image (see gatys.run), so it must start
    # from one: the previous result carries the content's colours, put back after its stage.
    return color.grey_rgb(color.luminance(start)) if original_colors else start
