"""One Gatys optimisation: targets, objective (whole image or tiled) and the shared evaluation loop.

An image x is optimised so that its VGG responses match the content image's feature maps at the content layers
and the style images' Gram matrices at the style layers:

    L_total = α L_content + β L_style (+ λ_tv TV(x))

Where this departs from the paper, a comment says so. :func:`run` takes tensors at their working sizes, an
options dataclass and an ``on_step`` callback; :mod:`stylegram.gatys.multiscale` runs it stage by stage and
:mod:`stylegram.gatys.stylize` adds files and weights around it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from stylegram.core import images, units
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep
from stylegram.gatys import memory, tiled
from stylegram.gatys.objective import Objective
from stylegram.gatys.options import START_IMAGES, GatysOptions
from stylegram.gatys.targets import compute_targets
from stylegram.losses import color, guided
from stylegram.nets.vgg import VGG
from stylegram.optim import checkpoint
from stylegram.optim.loop import EvaluationLoop, Evaluator, LoopSettings


@dataclass(frozen=True)
class GatysResult:
    image: Tensor  # (1, 3, H, W) RGB in [0, 1]
    losses: dict[str, float]  # the weighted terms and total of the returned (best) image
    iterations: int
    stopped: bool  # True when on_step asked to stop before the budget was spent
    elapsed: float
    options: GatysOptions  # as run: precision="auto" resolved
    diverged: bool = False  # the loss became inf/NaN; the image is the best one before that
    tiles: int = 1  # tiles per evaluation (1: the whole image at once)


def initial_image(
    init: str, content: Tensor, styles: Sequence[Tensor], seed: int, load: Callable[[str], Tensor] | None = None
) -> Tensor:
    """The start image at the content's size: white noise (seeded), the content, the content recoloured to the
    first style's colour mean and covariance (``palette``), the first style, or a file."""
    _, _, h, w = content.shape
    if init == "noise":
        # White noise in the pixel domain, as the paper's reconstructions start from.
        gen = torch.Generator().manual_seed(seed)
        return torch.rand((1, 3, h, w), generator=gen).to(content)
    if init == "content":
        return content.clone()
    if init == "palette":
        # The photo's layout in the painting's colours: the same linear colour map as colour transfer, the
        # other way round. Only the start moves; the content target stays the photo.
        return color.match_color_histogram(content, styles[0])
    if init == "style":
        return torch.nn.functional.interpolate(styles[0], size=(h, w), mode="bilinear", align_corners=False)
    if load is None:
        raise UsageError(f"init must be {', '.join(START_IMAGES)} or an image file, got {init!r}")
    return torch.nn.functional.interpolate(load(init).to(content), size=(h, w), mode="bilinear", align_corners=False)


def run(
    vgg: VGG,
    content: Tensor,
    styles: Sequence[Tensor],
    options: GatysOptions,
    *,
    init: Tensor | None = None,
    on_step: OnStep | None = None,
    checkpointing: checkpoint.Checkpointing | None = None,
    resume: dict[str, Any] | None = None,
    max_memory: int | None = None,
) -> GatysResult:
    """Optimise an image; tensors are RGB (1, 3, H, W) in [0, 1], already at their working sizes.

    ``max_memory`` (bytes; default: what the device has free) decides whether the run is tiled
    (:mod:`tiled`, see ``options.tile_size``); raises UsageError when not even tiles would fit.

    ``checkpointing`` saves the state every N evaluations; ``resume`` (from :func:`checkpoint.load`) continues
    a saved state and ends with the same image as an uninterrupted run with the same checkpointing.

    ``content`` sets the output size; ``styles`` are used at the size given (see :func:`prepare`).
    ``init`` overrides ``options.init``. ``on_step`` is called after every loss evaluation and may return
    True to stop. With ``options.original_colors`` the optimisation runs on luminance (Gatys et al. 2017) and
    the content's colours are put back into the result and into every rendered step.
    """
    options = options.resolved(content.device)
    source = content
    if options.color_transfer == "histogram":
        styles = [color.match_color_histogram(s, content) for s in styles]
    if options.original_colors:
        content = color.grey_rgb(color.luminance(content))
        styles = [color.match_luminance(s, source) for s in styles]
    masks = None
    if options.content_masks is not None:
        masks = guided.load_masks(options.content_masks, options.style_masks, content, styles,
                                  colors=options.mask_colors)
    setup = _memory_plan(vgg, content, options, max_memory)
    targets = compute_targets(vgg, content, styles, options, masks, setup.tiling)
    objective: Evaluator = Objective(vgg, targets, options)
    tiles = 1
    if setup.tiling is not None:
        objective = tiled.TiledObjective(vgg, targets, options, setup.tiling)
        # The cuts move with each evaluation: a resumed run continues the sequence where it was saved.
        objective.evaluations = int(resume["count"]) if resume is not None else 0
        tiles = len(tiled.boxes(int(content.shape[-2]), int(content.shape[-1]), setup.tiling))
    start = init if init is not None else initial_image(options.init, content, styles, options.seed, _load_tensor)
    x = start.detach().clone().to(content).requires_grad_(True)

    def render(image: Tensor) -> Tensor:
        out = image.detach().clamp(0, 1)
        return color.keep_colors(out, source) if options.original_colors else out.clone()

    settings = LoopSettings(options.iterations, options.optimizer, options.learning_rate, setup.history)
    loop = EvaluationLoop(objective, x, settings, on_step=on_step, render=lambda: render(x),
                          checkpointing=checkpointing, resume=resume, identity=checkpoint.identity(options.to_dict()))
    with _deterministic_cudnn():
        loop.optimise()
    best = loop.best if loop.best is not None else x
    return GatysResult(render(best), loop.best_terms, loop.count, loop.stopped, time.perf_counter() - loop.t0,
                       options, loop.diverged, tiles)


def _memory_plan(vgg: VGG, content: Tensor, options: GatysOptions, max_memory: int | None) -> memory.Plan:
    h, w = content.shape[-2:]
    budget = max_memory if max_memory is not None else memory.available(content.device)
    setup = memory.plan(options.replace(size=max(h, w)), (w, h), budget, arch=vgg.arch)
    if setup is None:
        need = memory.estimate(options.replace(size=max(h, w)), (w, h), arch=vgg.arch).total
        raise UsageError(f"{w}×{h} px needs about {units.format_size(need)}, and not even tiles fit in the "
                         f"{units.format_size(budget or 0)} available")
    return setup


@contextlib.contextmanager
def _deterministic_cudnn() -> Iterator[None]:
    """cuDNN's deterministic algorithms for the run, so that the same seed gives the same pixels on a GPU too
    (its fastest algorithms accumulate in a varying order, and L-BFGS amplifies the differences)."""
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags


def _load_tensor(path: str) -> Tensor:
    return images.to_tensor(images.load_image(path))


def style_size(content_size: tuple[int, int], scale: float) -> int:
    """Longest side for a style image: ``scale`` × the output's longest side (neural-style's -style_scale)."""
    return max(16, round(max(content_size) * scale))


def prepare(
    content: Image.Image, styles: Sequence[Image.Image], options: GatysOptions, device: torch.device | None = None
) -> tuple[Tensor, list[Tensor]]:
    """Resize content to ``options.size`` (longest side) and styles to ``style_scale`` × that; as tensors."""
    c = images.resize_longest(content, options.size)
    s = [images.resize_longest(im, style_size(c.size, options.style_scale)) for im in styles]
    dev = device or torch.device("cpu")
    return images.to_tensor(c).to(dev), [images.to_tensor(im).to(dev) for im in s]
