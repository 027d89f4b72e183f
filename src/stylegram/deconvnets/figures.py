"""Figures of the deconvolutional-network room: filter banks, feature maps, reconstructions.

Signed quantities (filters, maps, contrast-normalised images) are drawn with zero as mid-grey, scaled by their
largest magnitude, each tile on its own (filters, as the paper draws them) or one scale for a whole set (maps,
so their strengths compare). Tiles are enlarged with nearest-neighbour sampling, so every pixel stays visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor

from stylegram.core import images
from stylegram.core.figures import Figure, panel_grid


def signed_image(x: Tensor, scale: float | None = None, zoom: int = 1) -> Image.Image:
    """A (H, W) signed tensor as a greyscale picture: 0 is mid-grey, ±``scale`` (default: max |x|) black/white."""
    s = float(x.abs().max()) if scale is None else scale
    v = (0.5 + 0.5 * x.detach().float().cpu() / (s if s > 0 else 1.0)).clamp(0, 1)
    pil = images.to_pil(v.expand(3, -1, -1))
    return pil.resize((pil.width * zoom, pil.height * zoom), Image.Resampling.NEAREST) if zoom > 1 else pil


def tile(pictures: Sequence[Image.Image], columns: int | None = None, gap: int = 2) -> Image.Image:
    """Equal-sized pictures in a grid on a white sheet (a filter bank as one panel)."""
    n = len(pictures)
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    w, h = pictures[0].size
    sheet = Image.new("RGB", (cols * (w + gap) + gap, rows * (h + gap) + gap), (255, 255, 255))
    for i, p in enumerate(pictures):
        sheet.paste(p, (gap + (i % cols) * (w + gap), gap + (i // cols) * (h + gap)))
    return sheet


def filter_bank(filters: Tensor, zoom: int = 8) -> Image.Image:
    """(K, 1, s, s) pixel-space filters as one tiled picture, each scaled on its own."""
    return tile([signed_image(f[0], zoom=zoom) for f in filters])


def filters_figure(banks: Sequence[Tensor], labels: Sequence[str], height: int = 360) -> Figure:
    """One panel per filter bank, labelled (layer 1, layer 2 in pixel space, …)."""
    panels = [filter_bank(b, zoom=max(2, 96 // b.shape[-1])) for b in banks]
    return panel_grid([panels], (), list(labels), height=height)


def maps_picture(maps: Tensor, zoom: int = 1) -> Image.Image:
    """(K, H, W) maps of one image as a tiled picture on one shared scale."""
    scale = float(maps.abs().max()) or 1.0
    return tile([signed_image(m, scale=scale, zoom=zoom) for m in maps])


def reconstructions_figure(inp: Tensor, recs: Sequence[Tensor], height: int = 256) -> Figure:
    """The preprocessed input (H, W) next to its reconstruction from each layer, on the input's scale."""
    scale = float(inp.abs().max()) or 1.0
    panels = [signed_image(inp, scale)] + [signed_image(r.clamp(-scale, scale), scale) for r in recs]
    labels = ["input (contrast normalised)"] + [f"from layer {i + 1}" for i in range(len(recs))]
    return panel_grid([panels], (), labels, height=height, labels_below=True)


def flat(x: Tensor) -> Tensor:
    """(1, C, H, W) or (C, H, W) to (C, H, W) on the CPU."""
    return (x[0] if x.dim() == 4 else x).detach().cpu().to(torch.float32)
