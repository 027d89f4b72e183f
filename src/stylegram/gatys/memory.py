"""Peak-memory estimate of one Gatys stage, from the layer shapes, so a run too large can be refused up front.

The estimate adds up what is alive at the peak, the backward pass of one evaluation late in the run:

* the VGG convolution weights (float32; plus a bfloat16 copy that autocast caches when precision is bfloat16);
* the activations: every layer's output up to the deepest loss layer, plus the normalised input (autograd
  saves the ReLU and pooling outputs; see ``estimate`` for why the convolutions' count too); in bfloat16 these
  are 2 bytes an element, and the loss layers get float32 copies;
* a workspace of two of the largest activations (a convolution's output before its ReLU, and the gradient
  flowing back through it);
* the Gram matrices: the targets, and the current ones with their differences for backward;
* the L-BFGS state: ``history_size`` (100, fewer for very large images: :func:`history_size`) pairs of
  image-sized float32 vectors once that many iterations have run, and about six more image-sized vectors
  (direction, previous gradient, line-search copies);
* the image buffers: the optimised image, its gradient, the best image so far, the content and start images.

A tiled run (:mod:`stylegram.tiled`) holds the activations and workspace of its largest tile instead of the
whole image's, plus the whole image's content targets and a tile's copy of the image and its gradient.
:func:`plan` picks untiled when that fits the budget, else the largest tiles that do.

Measured against the resident-set growth of real CPU runs it lands within about ±35 % (see tests/test_memory.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stylegram.core.resize import longest_side_shape
from stylegram.gatys import tiled
from stylegram.gatys.options import GatysOptions
from stylegram.nets.vgg import LayerSpec, layer_specs

HISTORY_SIZE = 100  # L-BFGS history_size for images up to ~1400 px
HISTORY_BYTES = 2 * 2**30  # … above which the history is cut to fit in this
MIN_HISTORY = 10
LBFGS_EXTRA_VECTORS = 6  # d, prev_flat_grad, flat grad, and strong-Wolfe's copies of x and g
IMAGE_BUFFERS = 5  # x, x.grad, best, content, start




@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes by part; ``total`` is the estimated peak of one stage."""

    weights: int
    activations: int
    workspace: int
    grams: int
    lbfgs: int
    images: int

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.workspace + self.grams + self.lbfgs + self.images


@dataclass(frozen=True)
class Plan:
    """How one stage runs: untiled (``tiling`` None) or tiled, with ``history`` L-BFGS pairs."""

    tiling: tiled.Tiling | None
    history: int
    estimate: MemoryEstimate


def history_size(options: GatysOptions, height: int, width: int) -> int:
    """L-BFGS pairs kept: ``options.lbfgs_history``, or 100 cut so that they take at most HISTORY_BYTES.

    Each pair is two image-sized float32 vectors: 100 pairs take 1.9 GB at 1024×768 but 30 GB at 4096×3072.
    Depends on the image size only, so the same options give the same run on any machine.
    """
    if options.lbfgs_history > 0:
        return options.lbfgs_history
    per_pair = 2 * 3 * height * width * 4
    return max(MIN_HISTORY, min(HISTORY_SIZE, HISTORY_BYTES // per_pair))


def output_shape(image_size: tuple[int, int], size: int) -> tuple[int, int]:
    """(H, W) of an image of ``image_size`` = (width, height) scaled so its longest side is ``size``."""
    width, height = image_size
    return longest_side_shape(height, width, size)


def estimate(options: GatysOptions, image_size: tuple[int, int], *, iterations: int | None = None,
             arch: str = "vgg16", tiling: tiled.Tiling | None = None) -> MemoryEstimate:
    """Estimated peak bytes of one run at ``options.size`` of a content image of ``image_size`` = (width, height).

    ``iterations`` (default ``options.iterations``) caps the L-BFGS history; Adam keeps two moments instead.
    Several style images cost no more than one: their Gram targets are blended into one per layer, and each
    style image's no-grad forward pass, before the optimisation, is smaller than the peak counted here.
    With ``tiling``, the activations are those of the largest tile.
    """
    h, w = output_shape(image_size, options.size)
    low = options.precision == "bfloat16"
    specs = layer_specs(arch)
    used = set(options.content_layers) | set(options.style_layers)
    order = [s.name for s in specs]
    weights = sum(s.in_channels * s.out_channels * 9 + s.out_channels for s in specs if s.kind == "conv") * 4
    if low:
        weights += weights // 2
    th, tw = (h, w) if tiling is None else tiled.largest_input(h, w, tiling)
    activations, largest = _activations(specs[: max(order.index(n) for n in used) + 1], used, th, tw, low)
    if tiling is not None:
        # A tile's core is a strided view of its feature maps: the Gram matrix keeps a contiguous float32 copy.
        activations += sum(_numel(specs[order.index(n)], th, tw) * 4 for n in used)
    channels = [specs[order.index(n)].out_channels for n in options.style_layers]
    grams = sum((3 if tiling is None else 5) * c * c * 4 for c in channels)  # tiled: also the sums and ∂L/∂G
    content = sum(_numel(specs[order.index(n)], h, w) * 4 for n in options.content_layers)
    n = 3 * h * w * 4
    steps = options.iterations if iterations is None else iterations
    history = 2 * min(history_size(options, h, w), steps) + LBFGS_EXTRA_VECTORS
    lbfgs = 2 * n if options.optimizer == "adam" else history * n  # Adam keeps two moments instead
    # Tiled: the gradient is summed into a new buffer while the last one is alive, and a tile has its own.
    buffers = IMAGE_BUFFERS * n + (0 if tiling is None else n + 2 * 3 * th * tw * 4)
    return MemoryEstimate(weights=weights, activations=activations, workspace=2 * largest * 4,
                          grams=grams + content, lbfgs=lbfgs, images=buffers)


def _numel(spec: LayerSpec, h: int, w: int) -> int:
    return spec.out_channels * -(-h // spec.scale) * -(-w // spec.scale)


def _activations(specs: list[LayerSpec], used: set[str], h: int, w: int, low: bool) -> tuple[int, int]:
    """Bytes of the activations kept for backward of an (h, w) input, and the largest one's element count."""
    activations, largest = 3 * h * w * 4, 0
    for spec in specs:
        numel = _numel(spec, h, w)
        largest = max(largest, numel)
        # Autograd keeps the ReLU and pooling outputs; the convolutions' outputs are freed after their ReLU,
        # but measured peaks (tests/test_memory.py) are ~1.7x that: the loss layers' gradients wait until the
        # backward pass reaches them, and the allocator keeps freed blocks. Counting every layer's output,
        # the convolutions' included, matches the measurements.
        activations += numel * (2 if low else 4)
        if low and spec.name in used:
            activations += numel * 4  # the float32 copy the losses work on
    return activations, largest


def plan(options: GatysOptions, image_size: tuple[int, int], budget: int | None, *, iterations: int | None = None,
         arch: str = "vgg16") -> Plan | None:
    """Untiled if that fits ``budget`` (None: unknown, assume it fits) and no ``tile_size`` is asked for; else
    the largest tiles that fit (at most ``tile_size``); None when not even MIN_CORE-pixel tiles fit."""
    h, w = output_shape(image_size, options.size)
    history = history_size(options, h, w)
    whole = estimate(options, image_size, iterations=iterations, arch=arch)
    if options.tile_size == 0 and (budget is None or whole.total <= budget):
        return Plan(None, history, whole)
    margin, align = tiled.margin_for((*options.content_layers, *options.style_layers), arch)

    def tiling(core: int) -> tiled.Tiling:
        return tiled.Tiling(core=core * align, margin=margin, align=align)

    def fits(core: int) -> bool:
        return budget is None or estimate(options, image_size, iterations=iterations, arch=arch,
                                          tiling=tiling(core)).total <= budget

    top = -(-max(h, w) // align) if options.tile_size == 0 else max(1, options.tile_size // align)
    lo = min(top, -(-tiled.MIN_CORE // align)) if options.tile_size == 0 else top
    if not fits(lo):
        return None
    while lo < top:  # in units of align: bisect for the largest core that fits
        mid = (lo + top + 1) // 2
        lo, top = (mid, top) if fits(mid) else (lo, mid - 1)
    chosen = tiling(lo)
    if options.tile_size == 0 and len(tiled.boxes(h, w, chosen)) == 1:
        return Plan(None, history, whole)  # one tile is the whole image: no need for the tiled passes
    return Plan(chosen, history, estimate(options, image_size, iterations=iterations, arch=arch, tiling=chosen))


def largest_size(options: GatysOptions, image_size: tuple[int, int], budget: int, *, iterations: int | None = None,
                 arch: str = "vgg16") -> int | None:
    """The largest longest side, at most ``options.size``, that fits ``budget`` (tiled if need be); None if none
    does."""
    def fits(size: int) -> bool:
        return plan(options.replace(size=size), image_size, budget, iterations=iterations, arch=arch) is not None

    lo, hi = 16, options.size
    if not fits(lo):
        return None
    while lo < hi:  # the estimate grows with the size: bisect for the last size that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def available(device: torch.device | str) -> int | None:
    """Bytes free for a run on ``device``: the GPU's free memory, or MemAvailable on Linux; None when unknown."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    if dev.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
