"""Gatys et al., "A Neural Algorithm of Artistic Style" (2015/2016): style transfer by optimising an image.

An image x is optimised so that its VGG responses match the content image's feature maps at the content layers
and the style images' Gram matrices at the style layers:

    L_total = α L_content + β L_style (+ λ_tv TV(x))

Where this departs from the paper, a comment says so. Three entry points:

* :func:`stylize` — PIL images or paths in, a PIL image out; loads the default offline VGG16; outputs larger
  than ``coarse_size`` go coarse-to-fine (:mod:`stylegram.multiscale`).
* :func:`run` — tensors in and out, with an options dataclass and an ``on_step`` callback.
* :class:`GatysOptions` — every option with its default, in one place (the CLI derives from it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from PIL import Image
from torch import Tensor

from . import checkpoint, color, guided, images, losses, tiled
from .events import OnStep, StepEvent
from .vgg import VGG

if TYPE_CHECKING:
    from . import memory

# The paper names layers after Caffe blobs, and Caffe's ReLUs work in place, so the paper's "conv4_2" response
# is the rectified output, our relu4_2 (as in neural-style). Pass conv* names for pre-activation responses.
PAPER_CONTENT_LAYERS = ("relu4_2",)
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class GatysOptions:
    """Every option of Gatys style transfer, with its default. ``help`` metadata feeds the CLI."""

    size: int = _opt(512, "longest side of the output in pixels")
    iterations: int = _opt(500, "loss evaluations (one forward + backward pass each), whatever the optimiser")
    content_weight: float = _opt(1.0, "α: weight of the content loss")
    style_weight: float = _opt(30.0, "β: weight of the style loss; α/β sets the trade-off (lower = more style)")
    tv_weight: float = _opt(0.0, "weight of the total-variation smoothness term (0 = off)")
    content_layers: tuple[str, ...] = _opt(PAPER_CONTENT_LAYERS, "VGG layers for the content loss")
    style_layers: tuple[str, ...] = _opt(PAPER_STYLE_LAYERS, "VGG layers for the style loss")
    style_layer_weights: tuple[float, ...] | None = _opt(None, "weight w_l of each style layer (default: equal)")
    style_blend_weights: tuple[float, ...] | None = _opt(None, "weight of each style image (default: equal)")
    style_scale: float = _opt(1.0, "size of the style image(s) relative to the output")
    content_masks: tuple[str, ...] | None = _opt(
        None, "one mask image per style: where on the output each style goes (white = on; Gatys et al. 2017)"
    )
    style_masks: tuple[str, ...] | None = _opt(
        None, "one mask image per style: which part of each style image to take the style from"
    )
    mask_colors: tuple[str, ...] | None = _opt(
        None, "colour-indexed masks: one colour per style (ff0000,#00f,blue …); each mask image's pixels of "
        "style k's colour mark its region (one content mask image may then serve every style)"
    )
    original_colors: bool = _opt(False, "keep the content's colours (luminance-only transfer)")
    color_transfer: Literal["none", "histogram"] = _opt(
        "none", "histogram: recolour the style image(s) to the content's colour mean and covariance first"
    )
    init: str = _opt("content", "start image: content, noise (the paper's white noise), style, or an image file")
    optimizer: Literal["lbfgs", "adam"] = _opt("lbfgs", "optimiser: lbfgs or adam")
    learning_rate: float | None = _opt(None, "step size (default: 1 for L-BFGS, 0.02 for Adam)")
    pooling: Literal["avg", "max"] = _opt("avg", "pooling in VGG: avg (the paper's choice) or max")
    precision: Literal["auto", "float32", "bfloat16"] = _opt(
        "auto", "arithmetic of the VGG convolutions: float32, bfloat16, or auto (bfloat16 where the hardware "
        "has native bfloat16, else float32)"
    )
    multiscale: bool = _opt(True, "coarse-to-fine: optimise first at coarse-size or less, then double up to size")
    coarse_size: int = _opt(512, "longest side of the coarsest stage: the output is halved until it fits")
    stage_iterations: tuple[int, ...] | None = _opt(
        None, "evaluations per stage, coarsest first (default: iterations at the coarsest, half as many at each "
        "finer stage)"
    )
    tile_size: int = _opt(
        0, "optimise in tiles whose cores are at most this many pixels a side, with the whole image's exact "
        "gradient (0 = automatic: tile only a stage that would not fit the memory budget)"
    )
    lbfgs_history: int = _opt(
        0, "L-BFGS curvature pairs kept (0 = automatic: 100, fewer above ~1400 px so that they take at most 2 GiB)"
    )
    seed: int = _opt(0, "random seed for the noise start; same seed, same machine, same image")
    model: str = _opt("vgg16-caffe", "weights id (see `stylegram weights list`)")
    weights: str | None = _opt(None, "a weights file to use instead of the model's default location")

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("; ".join(problems))

    def _problems(self) -> Iterator[str]:
        if self.size < 16 or self.size > 16384:
            yield f"size must be between 16 and 16384 pixels, got {self.size}"
        if self.iterations < 0:
            yield "iterations must be >= 0"
        for name in ("content_weight", "style_weight", "tv_weight", "style_scale"):
            if getattr(self, name) < 0:
                yield f"{name.replace('_', '-')} must be >= 0"
        if self.style_scale <= 0:
            yield "style-scale must be > 0"
        if not self.content_layers and not self.style_layers:
            yield "give at least one content or style layer"
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            yield (
                f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers"
            )
        if self.optimizer not in ("lbfgs", "adam"):
            yield f"optimizer must be lbfgs or adam, got {self.optimizer!r}"
        if self.precision not in ("auto", "float32", "bfloat16"):
            yield f"precision must be auto, float32 or bfloat16, got {self.precision!r}"
        if self.color_transfer not in ("none", "histogram"):
            yield f"color transfer must be none or histogram, got {self.color_transfer!r}"
        if self.pooling not in ("avg", "max"):
            yield f"pooling must be avg or max, got {self.pooling!r}"
        if self.coarse_size < 16:
            yield "coarse-size must be >= 16"
        if self.stage_iterations is not None and any(n < 0 for n in self.stage_iterations):
            yield "stage iterations must be >= 0"
        if self.learning_rate is not None and self.learning_rate <= 0:
            yield "learning rate must be > 0"
        if self.tile_size != 0 and self.tile_size < 16:
            yield "tile-size must be 0 (automatic) or >= 16"
        if self.lbfgs_history < 0:
            yield "lbfgs-history must be >= 0 (0 = automatic)"

    def replace(self, **changes: Any) -> GatysOptions:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


@dataclass(frozen=True)
class Targets:
    """What the image is pulled towards: content features and (blended) style Gram matrices."""

    content: dict[str, Tensor]
    style: dict[str, Tensor]  # per layer: (1, C, C) blended, or (K, C, C) per region with masks
    style_layer_weights: dict[str, float]
    guides: dict[str, Tensor] | None = None  # per style layer: (K, 1, h, w) region weights (guided.py)


def check(vgg: VGG, options: GatysOptions, n_styles: int) -> None:
    """Raise ValueError, before any work, for layers the network lacks or weights that do not match the styles."""
    for layer in (*options.content_layers, *options.style_layers):
        vgg.spec(layer)
    if options.style_layers and n_styles == 0:
        raise ValueError("style layers were given but no style image")
    masks, style_masks, colors = options.content_masks, options.style_masks, options.mask_colors
    if colors is not None:
        guided.parse_colors(colors)  # a colour that is not one fails here, before any work
    if colors is not None and (masks is None or len(colors) != n_styles):
        raise ValueError(f"{len(colors)} mask colours for {n_styles} style images: give one per style, "
                         "with --content-masks")
    if masks is not None and len(masks) != n_styles and not (colors is not None and len(masks) == 1):
        raise ValueError(f"{len(masks)} content masks for {n_styles} style images: give one per style "
                         "(or one colour-indexed mask with --mask-colors)")
    if style_masks is not None and (masks is None or len(style_masks) != n_styles):
        raise ValueError("style masks need content masks, one of each per style image")
    if options.style_blend_weights is not None and len(options.style_blend_weights) != n_styles:
        raise ValueError(f"{len(options.style_blend_weights)} style blend weights for {n_styles} style images")


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (AVX512-BF16 or AMX CPUs; Ampere or newer GPUs)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence looked up defensively
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_precision(options: GatysOptions, device: torch.device) -> GatysOptions:
    """Options with ``precision="auto"`` replaced by what ``device`` runs best."""
    if options.precision != "auto":
        return options
    return options.replace(precision="bfloat16" if native_bfloat16(device) else "float32")


def features(vgg: VGG, x: Tensor, layers: Sequence[str], precision: str) -> dict[str, Tensor]:
    """VGG features in float32; with ``precision="bfloat16"`` the convolutions run in bfloat16 (autocast).

    Departure from the paper, opt-in: bfloat16 convolutions roughly halve the time per evaluation where the
    hardware has bfloat16 units, at ~3 significant digits per activation. Gram matrices and losses stay float32.
    """
    if not layers:
        return {}
    low = precision == "bfloat16" or (precision == "auto" and native_bfloat16(x.device))
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=low):
        out = vgg(x, layers)
    return {k: v.float() for k, v in out.items()}


def compute_targets(
    vgg: VGG, content: Tensor, styles: Sequence[Tensor], options: GatysOptions, masks: guided.Masks | None = None,
    tiling: tiled.Tiling | None = None,
) -> Targets:
    """Content features P^l and Gram targets A^l (blended across style images, or one per masked region).

    With ``tiling`` the images are run through VGG tile by tile (:mod:`tiled`): the same targets, less memory.
    """
    check(vgg, options, len(styles))
    blend = options.style_blend_weights or tuple(1.0 for _ in styles)
    layers = options.style_layers
    layer_w = options.style_layer_weights or tuple(1.0 / len(layers) for _ in layers)
    with torch.no_grad():
        if tiling is not None:
            content_feats = tiled.feature_maps(vgg, content, options.content_layers, tiling, options.precision)
            style_masks = masks.style if masks is not None else (None,) * len(styles)
            per_style = [tiled.gram_matrices(vgg, s, layers, tiling, options.precision,
                                             guides=None if m is None else _layer_guides(vgg, layers, m, s))
                         for s, m in zip(styles, style_masks, strict=True)]
            style_targets = {layer: _combine([g[layer] for g in per_style], blend, masks) for layer in layers}
        else:
            content_feats = features(vgg, content, options.content_layers, options.precision)
            maps = [features(vgg, s, layers, options.precision) for s in styles]
            style_targets = {
                layer: guided.region_targets([f[layer] for f in maps], masks.style) if masks is not None
                else losses.blend_grams([losses.gram_matrix(f[layer]) for f in maps], blend)
                for layer in layers
            }
    region_guides = None if masks is None else _layer_guides(vgg, layers, masks.content, content)
    return Targets(
        content={k: v.detach() for k, v in content_feats.items()},
        style=style_targets,
        style_layer_weights=dict(zip(options.style_layers, layer_w, strict=True)),
        guides=region_guides,
    )


def _layer_guides(vgg: VGG, layers: Sequence[str], mask: Tensor, image: Tensor) -> dict[str, Tensor]:
    """Region weights of ``mask`` at each layer's feature size for ``image`` (:func:`guided.guides`)."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    return {k: guided.guides(mask, vgg.feature_shape(k, h, w)) for k in layers}


def _combine(grams: Sequence[Tensor], blend: Sequence[float], masks: guided.Masks | None) -> Tensor:
    """One target per layer: the blend of the styles' Gram matrices, or (with masks) one per region."""
    return torch.cat(list(grams)) if masks is not None else losses.blend_grams(grams, blend)


class Objective:
    """L_total(x) for one set of targets; calling it runs one forward pass and returns the weighted terms."""

    def __init__(self, vgg: VGG, targets: Targets, options: GatysOptions) -> None:
        self.vgg, self.targets, self.options = vgg, targets, options
        self.layers = tuple(dict.fromkeys((*options.content_layers, *options.style_layers)))

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        o, t = self.options, self.targets
        feats = features(self.vgg, x, self.layers, o.precision)
        if t.guides is not None:
            # (1, C, h, w) × (K, 1, h, w): one weighted copy of the features per region.
            feats = {**feats, **{k: feats[k] * g for k, g in t.guides.items()}}
        terms: dict[str, Tensor] = {}
        if t.content:
            parts = [losses.content_loss(feats[k], v) for k, v in t.content.items()]
            terms["content"] = o.content_weight * torch.stack(parts).sum()
        if t.style:
            terms["style"] = o.style_weight * losses.style_loss(feats, t.style, t.style_layer_weights)
        if o.tv_weight > 0:
            terms["tv"] = o.tv_weight * losses.total_variation(x)
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms

    def value_and_grad(self, x: Tensor) -> dict[str, Tensor]:
        """The weighted terms at ``x`` (detached); sets ``x.grad`` to the gradient of their total."""
        terms = self(x)
        x.grad = None
        terms["total"].backward()  # type: ignore[no-untyped-call]
        return {k: v.detach() for k, v in terms.items()}


class Evaluator(Protocol):
    def value_and_grad(self, x: Tensor) -> dict[str, Tensor]: ...


def initial_image(
    init: str, content: Tensor, styles: Sequence[Tensor], seed: int, load: Callable[[str], Tensor] | None = None
) -> Tensor:
    """The start image at the content's size: white noise (seeded), the content, the first style, or a file."""
    _, _, h, w = content.shape
    if init == "noise":
        # White noise in the pixel domain, as the paper's reconstructions start from.
        gen = torch.Generator().manual_seed(seed)
        return torch.rand((1, 3, h, w), generator=gen).to(content)
    if init == "content":
        return content.clone()
    if init == "style":
        return torch.nn.functional.interpolate(styles[0], size=(h, w), mode="bilinear", align_corners=False)
    if load is None:
        raise ValueError(f"init must be noise, content, style or an image file, got {init!r}")
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
    (:mod:`tiled`, see ``options.tile_size``); raises ValueError when not even tiles would fit.

    ``checkpointing`` saves the state every N evaluations; ``resume`` (from :func:`checkpoint.load`) continues
    a saved state and ends with the same image as an uninterrupted run with the same checkpointing.

    ``content`` sets the output size; ``styles`` are used at the size given (see :func:`prepare`).
    ``init`` overrides ``options.init``. ``on_step`` is called after every loss evaluation and may return
    True to stop. With ``options.original_colors`` the optimisation runs on luminance (Gatys et al. 2017) and
    the content's colours are put back into the result and into every rendered step.
    """
    options = resolve_precision(options, content.device)
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

    loop = _Loop(objective, x, options, on_step, lambda: render(x), checkpointing, resume, setup.history)
    with _deterministic_cudnn():
        loop.optimise()
    best = loop.best if loop.best is not None else x
    return GatysResult(render(best), loop.best_terms, loop.count, loop.stopped, time.perf_counter() - loop.t0,
                       options, loop.diverged, tiles)


def _memory_plan(vgg: VGG, content: Tensor, options: GatysOptions, max_memory: int | None) -> memory.Plan:
    from . import memory

    h, w = content.shape[-2:]
    budget = max_memory if max_memory is not None else memory.available(content.device)
    setup = memory.plan(options.replace(size=max(h, w)), (w, h), budget, arch=vgg.arch)
    if setup is None:
        need = memory.estimate(options.replace(size=max(h, w)), (w, h), arch=vgg.arch).total
        raise ValueError(f"{w}×{h} px needs about {memory.format_size(need)}, and not even tiles fit in the "
                         f"{memory.format_size(budget or 0)} available")
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


class _Stop(Exception):
    """Raised inside the optimiser's closure to end the run: asked to stop, budget spent, or diverged."""


class _Loop:
    """Runs the optimiser for exactly ``options.iterations`` loss evaluations, reporting each one.

    Keeps the best image evaluated so far: L-BFGS's line search evaluates trial points, and the run may be
    stopped in the middle of one, so the last image evaluated is not always the best.
    """

    # The first L-BFGS step moves the mean pixel by about this much (in [0, 1] units); see optimise().
    FIRST_STEP = 0.01

    def __init__(
        self, objective: Evaluator, x: Tensor, options: GatysOptions, on_step: OnStep | None,
        render: Callable[[], Tensor], checkpointing: checkpoint.Checkpointing | None = None,
        resume: dict[str, Any] | None = None, history: int = 100,
    ) -> None:
        self.objective, self.x, self.options = objective, x, options
        self.on_step, self.render = on_step, render
        self.count, self.stopped, self.diverged = 0, False, False
        self.best: Tensor | None = None
        self.best_terms: dict[str, float] = {}
        self.checkpointing, self.resume, self.history = checkpointing, resume, history
        self.t0 = time.perf_counter()

    def evaluate(self) -> Tensor:
        if self.count >= self.options.iterations:
            raise _Stop  # the line search wants more than the budget allows
        terms = self.objective.value_and_grad(self.x)
        self.count += 1
        last = {k: float(v) for k, v in terms.items()}
        if not math.isfinite(last["total"]):
            self.diverged = True
            raise _Stop
        if self.best is None or last["total"] < self.best_terms["total"]:
            self.best, self.best_terms = self.x.detach().clone(), last
        if self.on_step is not None:
            event = StepEvent(self.count, self.options.iterations, last, time.perf_counter() - self.t0,
                              render=self.render)
            if self.on_step(event):
                self.stopped = True
                raise _Stop
        return terms["total"]

    def optimise(self) -> None:
        try:
            if self.options.optimizer == "adam":
                self._adam()
            else:
                self._lbfgs()
        except _Stop:
            pass

    def _adam(self) -> None:
        opt = torch.optim.Adam([self.x], lr=self.options.learning_rate or 0.02)
        self._restore(opt)
        while self.count < self.options.iterations:
            self.evaluate()
            opt.step()
            every = self.checkpointing.every if self.checkpointing is not None else 0
            if every > 0 and self.count % every == 0:
                self._save(opt, self.count)

    def _lbfgs(self) -> None:
        n, lr = self.options.iterations, self.options.learning_rate or 1.0
        # Departure from neural-style, which runs L-BFGS without a line search: its first step is 1/|g|_1 along
        # -g, about 1e-6 per pixel for a megapixel image, and the curvature pair from such a step can scale the
        # second step into inf/NaN. Here the first iteration is a steepest-descent step sized to move the mean
        # pixel by FIRST_STEP, and every iteration uses a strong-Wolfe line search (~1.1 evaluations each).
        lbfgs = torch.optim.LBFGS([self.x], lr=self.FIRST_STEP * self.x.numel(), max_iter=1, max_eval=n,
                                  history_size=self.history, tolerance_grad=0.0, tolerance_change=0.0,
                                  line_search_fn="strong_wolfe")
        if not self._restore(lbfgs):
            lbfgs.step(self.evaluate)  # type: ignore[no-untyped-call]
            for group in lbfgs.param_groups:
                group["lr"] = lr
        while self.count < n:
            # L-BFGS may return early (e.g. a vanishing step); the next step() continues its history. With
            # checkpoints, each step() ends at the first iteration boundary past the next checkpoint.
            until = self._next_checkpoint()
            for group in lbfgs.param_groups:
                group["max_iter"] = group["max_eval"] = until - self.count
            lbfgs.step(self.evaluate)  # type: ignore[no-untyped-call]
            self._save(lbfgs, until)

    def _next_checkpoint(self) -> int:
        n, c = self.options.iterations, self.checkpointing
        if c is None or c.every <= 0:
            return n
        return min(n, (self.count // c.every + 1) * c.every)

    def _save(self, opt: torch.optim.Optimizer, due: int) -> None:
        c = self.checkpointing
        if c is None or c.every <= 0 or self.count < due or self.count >= self.options.iterations:
            return
        checkpoint.save(c.path, {
            "options": json.dumps(self.options.to_dict(), sort_keys=True), "stage": c.stage,
            "x": self.x.detach().cpu(), "optimizer": opt.state_dict(), "count": self.count,
            "best": None if self.best is None else self.best.cpu(), "best_terms": self.best_terms,
        })

    def _restore(self, opt: torch.optim.Optimizer) -> bool:
        r = self.resume
        if r is None:
            return False
        with torch.no_grad():
            self.x.copy_(r["x"].to(self.x))
        opt.load_state_dict(r["optimizer"])
        self.count, self.best_terms = int(r["count"]), dict(r["best_terms"])
        self.best = None if r["best"] is None else r["best"].to(self.x)
        return True


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


@lru_cache(maxsize=4)
def _cached_vgg(model: str, weights: str | None, pooling: str, device: str) -> VGG:
    from .weights import load_vgg  # imported here: weights pulls in onnx only when first needed

    vgg, _ = load_vgg(model, path=weights, pooling=pooling, classifier=False, device=device)  # type: ignore[arg-type]
    return vgg


ImageLike = Image.Image | str | os.PathLike[str]


def _as_image(x: ImageLike) -> Image.Image:
    return x.convert("RGB") if isinstance(x, Image.Image) else images.load_image(x)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    from . import memory, multiscale  # imported here: both build on this module

    budget = memory.parse_size(max_memory) if isinstance(max_memory, str) else max_memory

    opts = GatysOptions(**options)
    style_list = [style] if isinstance(style, (Image.Image, str, os.PathLike)) else list(style)
    dev = torch.device(device) if device is not None else default_device()
    vgg = _cached_vgg(opts.model, opts.weights, opts.pooling, str(dev))
    result = multiscale.run(vgg, _as_image(content), [_as_image(im) for im in style_list], opts, device=dev,
                            on_step=on_step, max_memory=budget)
    return images.to_pil(result.image)
