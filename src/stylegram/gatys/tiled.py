"""Tiled Gatys optimisation for outputs larger than memory allows, with the exact gradient of the whole image.

The loss couples every pixel only through the Gram matrices: G^l = F^l F^lᵀ / M_l is a sum over positions, and
the content and total-variation terms are sums of local terms. So the gradient of the whole image's loss can be
assembled tile by tile:

1. a forward pass without gradients, tile by tile, sums each tile's F Fᵀ into the whole image's G^l;
2. the style loss of those G^l gives D^l = ∂L_style/∂G^l, a small (N_l × N_l) matrix per layer;
3. a second pass, tile by tile, back-propagates the surrogate ⟨D^l, F_t F_tᵀ / M_l⟩ plus the tile's content
   loss, whose gradient is the tile's exact share of ∂L/∂x; the shares are added up into one gradient.

A tile is its *core* (the pixels whose features it owns) plus a *margin* of context on each side, wide enough
that the core's features equal the whole image's: the deepest loss layer's receptive field fits inside it, and
tile corners sit on the pooling grid (multiples of the deepest layer's stride), so each pooling window sees the
same pixels as in the whole image. Features in the margins are computed and thrown away. Where a tile meets the
image border there is no margin, and the convolutions' zero padding is the whole image's padding.

Since every tile contributes its exact share, the gradient (and so the optimisation) is the untiled one up to
floating-point rounding: no seams can form (tests/test_tiled.py checks gradients and the optimised image
against an untiled run). Besides, the cuts between tiles move by one pooling stride between evaluations, so
that no cut stays in one place. The price is the extra forward pass (about a third more arithmetic) and the
margins; memory holds one tile's activations instead of the whole image's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from stylegram.gatys.features import Targets, features
from stylegram.gatys.options import GatysOptions
from stylegram.losses import functional as losses
from stylegram.nets.vgg import VGG, layer_specs

MIN_CORE = 128  # smaller cores would spend most of their work on margins
SHIFTS = (0, 1, -1)  # interior cuts move by these multiples of the alignment, one per evaluation, in turn


@dataclass(frozen=True)
class Tiling:
    """How to cut an image: cores of at most ``core`` pixels a side, ``margin`` pixels of context around each,
    corners on multiples of ``align`` (the deepest layer's stride)."""

    core: int
    margin: int
    align: int


@dataclass(frozen=True)
class Box:
    """One tile in image pixels: the core [y0, y1) × [x0, x1) and the input it is computed from."""

    y0: int
    y1: int
    x0: int
    x1: int
    iy0: int
    iy1: int
    ix0: int
    ix1: int

    def crop(self, image: Tensor) -> Tensor:
        return image[..., self.iy0:self.iy1, self.ix0:self.ix1]


def receptive_field(layers: Sequence[str], arch: str = "vgg16") -> tuple[int, int]:
    """(size, stride) in input pixels of the deepest of ``layers``: 3×3 convolutions, 2×2 stride-2 pooling."""
    specs = layer_specs(arch)
    names = [s.name for s in specs]
    deepest = max(names.index(n) for n in layers)
    size, stride = 1, 1
    for spec in specs[: deepest + 1]:
        if spec.kind == "conv":
            size += 2 * stride
        elif spec.kind == "pool":
            size += stride
            stride *= 2
    return size, stride


def margin_for(layers: Sequence[str], arch: str = "vgg16") -> tuple[int, int]:
    """(margin, align) that make tiled features exact for ``layers``.

    A core feature depends on pixels up to half the receptive field away, and the zero padding that each layer
    applies at a tile's cut corrupts features no further inward than that. Half the receptive field, rounded up
    to the stride, is enough: for relu5_1 (field 132 px, stride 16) that is 80 px, where 64 px was the smallest
    exact margin measured (tests/test_tiled.py compares tiled with untiled features).
    """
    size, stride = receptive_field(layers, arch)
    margin = -(-(size // 2) // stride) * stride
    return margin, stride


def _cuts(length: int, core: int, align: int, shift: int) -> list[int]:
    """Cut positions 0 = c_0 < … < c_n = length: n equal parts of at most ``core`` (on the ``align`` grid),
    the interior cuts moved by ``shift`` strides."""
    n = max(1, math.ceil(length / core))
    last = (length - 1) // align * align  # the last position on the grid before the end
    cuts = [0]
    for k in range(1, n):
        at = min(max(round(k * length / n / align + shift) * align, cuts[-1] + align), last)
        if at > cuts[-1]:
            cuts.append(at)
    cuts.append(length)
    return cuts


def boxes(height: int, width: int, tiling: Tiling, shift: int = 0) -> list[Box]:
    """The tiles covering a ``height`` × ``width`` image; their cores partition it."""
    out = []
    ys = _cuts(height, tiling.core, tiling.align, shift)
    xs = _cuts(width, tiling.core, tiling.align, shift)
    m = tiling.margin
    for y0, y1 in itertools.pairwise(ys):
        for x0, x1 in itertools.pairwise(xs):
            out.append(Box(y0, y1, x0, x1, max(0, y0 - m), min(height, y1 + m), max(0, x0 - m), min(width, x1 + m)))
    return out


def largest_input(height: int, width: int, tiling: Tiling) -> tuple[int, int]:
    """The largest tile input (h, w) over the shifts used: what one tile's activations are sized by."""
    sizes = [(b.iy1 - b.iy0, b.ix1 - b.ix0) for s in SHIFTS for b in boxes(height, width, tiling, s)]
    return max(h for h, _ in sizes), max(w for _, w in sizes)


def core(f: Tensor, box: Box, scale: int, height: int, width: int) -> Tensor:
    """The part of a tile's feature map ``f`` (at ``scale``) that lies in the box's core.

    Cuts lie on the pooling grid, so they map to whole feature rows; a core that ends at the image border keeps
    every remaining row, as ceil-mode pooling does for the whole image.
    """
    top, left = (box.y0 - box.iy0) // scale, (box.x0 - box.ix0) // scale
    bottom = f.shape[-2] if box.y1 == height else (box.y1 - box.iy0) // scale
    right = f.shape[-1] if box.x1 == width else (box.x1 - box.ix0) // scale
    return f[..., top:bottom, left:right]


def region(full: Tensor, box: Box, scale: int) -> Tensor:
    """The part of a whole-image feature-sized tensor (content targets, guides) under the box's core."""
    return full[..., box.y0 // scale: -(-box.y1 // scale), box.x0 // scale: -(-box.x1 // scale)]


def _tile_features(vgg: VGG, image: Tensor, layers: Sequence[str], tiling: Tiling, precision: str,
                   shift: int = 0) -> Iterator[tuple[Box, dict[str, Tensor]]]:
    h, w = image.shape[-2:]
    for box in boxes(h, w, tiling, shift):
        with torch.no_grad():
            feats = features(vgg, box.crop(image), layers, precision)
        yield box, {k: core(v, box, vgg.spec(k).scale, h, w) for k, v in feats.items()}


def gram_matrices(vgg: VGG, image: Tensor, layers: Sequence[str], tiling: Tiling, precision: str, *,
                  guides: Mapping[str, Tensor] | None = None, shift: int = 0) -> dict[str, Tensor]:
    """The whole image's normalised Gram matrices (as :func:`losses.gram_matrix`), summed tile by tile.

    With ``guides`` (per layer, (K, 1, h, w) at the whole image's feature size; see :mod:`guided`) one guided
    Gram matrix per region, (K, C, C), as ``gram_matrix(features * guides)``.
    """
    h, w = int(image.shape[-2]), int(image.shape[-1])
    sums: dict[str, Tensor] = {}
    for box, feats in _tile_features(vgg, image, layers, tiling, precision, shift):
        for layer in layers:
            f = feats[layer]
            if guides is not None:
                f = f * region(guides[layer], box, vgg.spec(layer).scale)
            part = losses.gram_matrix(f) * _share(f, vgg, layer, h, w)
            sums[layer] = part if layer not in sums else sums[layer] + part
    return sums


def _share(core_features: Tensor, vgg: VGG, layer: str, height: int, width: int) -> float:
    """A core's positions as a fraction of the whole image's at ``layer``: turns the core's Gram matrix
    (normalised by its own positions) into its contribution to the whole image's."""
    fh, fw = vgg.feature_shape(layer, height, width)
    return core_features.shape[-2] * core_features.shape[-1] / (fh * fw)


def feature_maps(vgg: VGG, image: Tensor, layers: Sequence[str], tiling: Tiling, precision: str) -> dict[str, Tensor]:
    """The whole image's feature maps at ``layers``, assembled from the tiles' cores (no gradients)."""
    h, w = image.shape[-2:]
    out: dict[str, Tensor] = {}
    for box, feats in _tile_features(vgg, image, layers, tiling, precision):
        for layer, f in feats.items():
            if layer not in out:
                out[layer] = f.new_empty((*f.shape[:2], *vgg.feature_shape(layer, h, w)))
            region(out[layer], box, vgg.spec(layer).scale).copy_(f)
    return out


class TiledObjective:
    """L_total(x) and its exact gradient, tile by tile; the same value as
    :class:`stylegram.gatys.objective.Objective` gives."""

    def __init__(self, vgg: VGG, targets: Targets, options: GatysOptions, tiling: Tiling) -> None:
        self.vgg, self.targets, self.options, self.tiling = vgg, targets, options, tiling
        self.layers = tuple(dict.fromkeys((*options.content_layers, *options.style_layers)))
        self.evaluations = 0

    def value_and_grad(self, x: Tensor) -> dict[str, Tensor]:
        """The weighted loss terms at ``x`` (detached); sets ``x.grad`` to the gradient of their total."""
        o, t, vgg = self.options, self.targets, self.vgg
        shift = SHIFTS[self.evaluations % len(SHIFTS)]
        self.evaluations += 1
        h, w = x.shape[-2:]
        image = x.detach()
        grad = torch.zeros_like(image)
        terms: dict[str, Tensor] = {}
        d_gram: dict[str, Tensor] = {}
        style: Tensor | None = None
        if t.style:
            grams = gram_matrices(vgg, image, tuple(t.style), self.tiling, o.precision, guides=t.guides, shift=shift)
            leaves = {k: g.requires_grad_(True) for k, g in grams.items()}
            with torch.enable_grad():
                style = sum_style(leaves, t.style, t.style_layer_weights)
                d_gram = dict(zip(leaves, torch.autograd.grad(style, list(leaves.values())), strict=True))
        content = image.new_zeros(())
        for box in boxes(h, w, self.tiling, shift):
            tile = box.crop(image).requires_grad_(True)
            with torch.enable_grad():
                feats = features(vgg, tile, self.layers, o.precision)
                parts: list[Tensor] = []
                for layer, d in d_gram.items():
                    scale = vgg.spec(layer).scale
                    f = core(feats[layer], box, scale, h, w)
                    if t.guides is not None:
                        f = f * region(t.guides[layer], box, scale)
                    # ⟨D, F_t F_tᵀ / M⟩: the core's share of the whole image's Gram matrix.
                    parts.append((d * losses.gram_matrix(f)).sum() * _share(f, vgg, layer, h, w))
                if t.content:
                    tile_content = torch.stack([
                        t.content_weight(k) * losses.content_loss(core(feats[k], box, vgg.spec(k).scale, h, w),
                                                                  region(v, box, vgg.spec(k).scale))
                        for k, v in t.content.items()
                    ]).sum()
                    content = content + tile_content.detach()
                    parts.append(tile_content)
                torch.stack(parts).sum().backward()  # type: ignore[no-untyped-call]
            assert tile.grad is not None
            box.crop(grad).add_(tile.grad)
        if t.content:
            terms["content"] = content
        if style is not None:
            terms["style"] = style.detach()
        if t.tv_weight > 0:
            smooth = image.clone().requires_grad_(True)
            with torch.enable_grad():
                tv = t.tv_weight * losses.total_variation(smooth, t.tv_norm)
                tv.backward()  # type: ignore[no-untyped-call]
            assert smooth.grad is not None
            grad += smooth.grad
            terms["tv"] = tv.detach()
        terms["total"] = torch.stack(list(terms.values())).sum()
        x.grad = grad
        return terms


def sum_style(grams: Mapping[str, Tensor], targets: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Σ_l w_l E_l from Gram matrices already computed (:func:`losses.style_loss` computes them itself)."""
    return torch.stack([w * losses.style_layer_loss(grams[k], targets[k]) for k, w in weights.items()]).sum()
