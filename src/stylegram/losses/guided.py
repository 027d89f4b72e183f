"""Spatial control with guided Gram matrices (Gatys et al. 2017, "Controlling Perceptual Factors", section 4).

Region k of the output (content mask k) takes its style from style image k (where its style mask k is on, the
whole image by default). Each region's Gram matrix is computed from the features weighted by its mask,
resized to the layer's resolution, and normalised by the mask's area instead of the layer's:

    G_k = (F ⊙ m_k)(F ⊙ m_k)ᵀ / Σ m_k

so regions of different sizes compare with their targets on the same scale. Implemented by scaling the masked
features by sqrt(M / Σ m_k), which makes :func:`losses.gram_matrix` (which divides by M) return G_k; the style
loss then sums E_l over the K regions, shaped (K, C, C).

Masks come in two kinds. Greyscale: one image per style, white = on (colour images are averaged to grey).
Colour-indexed (``colors=``, one colour per style): region k is where a mask image has colour k, so one painted
image can hold every region. Each pixel goes to the *nearest* listed colour (Euclidean distance in 0–255 RGB),
unless it is further than :data:`COLOR_TOLERANCE` from every listed colour and from every blend of two of them
(what anti-aliasing between two regions produces): then it is in no region and gets no style. The hard
assignment is made at the mask's own resolution and the K one-hot maps are then resized (bilinear, anti-aliased),
so colours never blend into a wrong region and edges become soft weights that still sum to one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image, ImageColor
from torch import Tensor

from stylegram.core import images

RGB = tuple[int, int, int]

# A pixel further than this (Euclidean, 0–255 RGB; the largest possible distance is 441) from every listed colour
# and from every blend of two listed colours belongs to no region. JPEG noise and chroma subsampling move flat
# colours by a few tens at most; black, white, grey or an unlisted hue next to saturated colours is 128 or more away.
COLOR_TOLERANCE = 100.0
_HEX = re.compile(r"#?([0-9a-f]{3}|[0-9a-f]{6})")
_COLOR_HELP = "use hex (ff0000, #ff0000, #f00) or a CSS colour name (red, green, blue, yellow, cyan, magenta …)"


@dataclass(frozen=True)
class Masks:
    """Content masks (K, 1, H, W) at the output's size, and one style mask (1, 1, h, w) per style image."""

    content: Tensor
    style: tuple[Tensor, ...]


# -------------------------------------------------------------------------------------------------- colours


def parse_color(text: str) -> RGB:
    """An RGB triple from hex (``ff0000``, ``#ff0000``, ``#f00``) or a CSS colour name (``red``); else ValueError."""
    spec = text.strip().lower()
    if match := _HEX.fullmatch(spec):
        spec = "#" + match[1]
    try:
        rgb = ImageColor.getrgb(spec) if spec else None
    except ValueError:
        rgb = None
    if rgb is None or len(rgb) != 3:  # a 4-tuple means #rrggbbaa: transparency has no meaning in a mask
        raise ValueError(f"mask colour {text!r} is not a colour: {_COLOR_HELP}")
    return rgb[0], rgb[1], rgb[2]


def parse_colors(texts: Sequence[str]) -> list[RGB]:
    """:func:`parse_color` for each of ``texts``, which must name different colours."""
    colors = [parse_color(t) for t in texts]
    for i, c in enumerate(colors):
        if c in colors[:i]:
            raise ValueError(f"mask colours {texts[colors.index(c)]!r} and {texts[i]!r} are the same colour "
                             f"{hex_color(c)}: each style needs its own")
    return colors


def hex_color(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb[:3])


def color_regions(image: Tensor, colors: Sequence[RGB], tolerance: float = COLOR_TOLERANCE) -> Tensor:
    """One-hot regions (K, 1, H, W) of an RGB ``image`` (1, 3, H, W) in [0, 1]: each pixel in its nearest colour's
    region, or in none when it is more than ``tolerance`` from every colour and every blend of two of them."""
    pixels = image[0].to(torch.float32) * 255  # (3, H, W)
    palette = [torch.tensor(c, dtype=torch.float32).view(3, 1, 1) for c in colors]
    # One (H, W) map per colour, never a (K, 3, H, W) temporary: masks may be large photos.
    nearest = torch.zeros(pixels.shape[1:], dtype=torch.long)
    best = torch.full(pixels.shape[1:], float("inf"))
    for k, c in enumerate(palette):
        d = (pixels - c).square().sum(dim=0)
        closer = d < best
        nearest[closer], best[closer] = k, d[closer]
    near = best <= tolerance**2
    for i in range(len(palette)):
        for j in range(i + 1, len(palette)):
            near |= _segment_distance2(pixels, palette[i], palette[j]) <= tolerance**2
    onehot = F.one_hot(nearest, len(palette)).permute(2, 0, 1).to(torch.float32) * near
    return onehot.unsqueeze(1)


def _segment_distance2(pixels: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Squared distance (H, W) of each pixel (3, H, W) to the blends (1 - t) a + t b, 0 <= t <= 1."""
    ab = b - a
    t = (((pixels - a) * ab).sum(dim=0) / ab.square().sum().clamp_min(1e-6)).clamp(0, 1)
    return (pixels - (a + t * ab)).square().sum(dim=0)


def main_colors(img: Image.Image, n: int = 5, min_share: float = 0.01) -> list[tuple[str, float]]:
    """Up to ``n`` dominant colours of ``img`` as (hex, share of pixels), most common first, for error messages.

    Median-cut quantisation to 16 colours, then shades within :data:`COLOR_TOLERANCE` / 2 of a more common one
    (JPEG noise, anti-aliased edges) are merged into it.
    """
    small = img.convert("RGB")
    small.thumbnail((256, 256), Image.Resampling.NEAREST)  # nearest: no blends that are not in the image
    quantized = small.quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    merged: list[tuple[RGB, int]] = []
    for count, index in sorted(quantized.getcolors() or [], reverse=True):
        if not isinstance(index, int):  # always a palette index in mode "P"
            continue
        rgb: RGB = (palette[3 * index], palette[3 * index + 1], palette[3 * index + 2])
        near = [i for i, (kept, _) in enumerate(merged) if math.dist(kept, rgb) <= COLOR_TOLERANCE / 2]
        if near:
            merged[near[0]] = (merged[near[0]][0], merged[near[0]][1] + count)
        else:
            merged.append((rgb, count))
    total = max(1, sum(count for _, count in merged))
    ranked = sorted(merged, key=lambda item: -item[1])
    return [(hex_color(rgb), count / total) for rgb, count in ranked[:n] if count / total >= min_share]


# ---------------------------------------------------------------------------------------------------- masks


def load_mask(path: str, size: tuple[int, int]) -> Tensor:
    """A greyscale mask in [0, 1], (1, 1, H, W) at ``size`` = (H, W); colour images are averaged to grey."""
    grey = images.to_tensor(images.load_image(path)).mean(dim=1, keepdim=True)
    return F.interpolate(grey, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def load_color_masks(
    path: str, colors: Sequence[RGB], size: tuple[int, int], wanted: Sequence[int], names: Sequence[str] | None = None
) -> Tensor:
    """Regions ``wanted`` (indices into ``colors``) of a colour-indexed mask, (len(wanted), 1, H, W) at ``size``.

    The nearest-colour assignment is made at the image's own resolution; the one-hot maps are then resized, so
    edges become soft weights. A wanted region without a single pixel raises :class:`images.ImageError` naming
    the colour, the file and the colours the image does contain.
    """
    img = images.load_image(path)
    regions = color_regions(images.to_tensor(img), colors)[list(wanted)]
    for row, k in enumerate(wanted):
        if regions[row].sum() > 0:
            continue
        label = hex_color(colors[k])
        if names is not None and names[k].strip().lower().lstrip("#") != label[1:]:
            label = f"{names[k].strip()!r} ({label})"
        found = ", ".join(f"{c} ({share:.0%})" for c, share in main_colors(img)) or "none"
        raise images.ImageError(
            f"mask '{path}' has no pixel of colour {label} (style {k + 1}); its main colours are {found}: "
            "paint that region or fix the mask colours"
        )
    # Anti-aliased resizing works both ways: a true average when shrinking, bilinear when enlarging.
    return F.interpolate(regions, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def load_masks(
    content_paths: Sequence[str],
    style_paths: Sequence[str] | None,
    content: Tensor,
    styles: Sequence[Tensor],
    *,
    colors: Sequence[str] | None = None,
) -> Masks:
    """Masks for ``content`` and ``styles`` (tensors at their working sizes), one region per style image.

    Without ``colors``: one greyscale content mask (and style mask, if any) per style image. With ``colors``
    (one per style image): colour-indexed masks, one content mask for every style or one per style, and style
    mask k's region is where it has colour k.
    """
    k_styles = len(styles)
    if colors is not None and len(colors) != k_styles:
        raise ValueError(f"{len(colors)} mask colours for {k_styles} style images: give one per style")
    per_style = len(content_paths) == k_styles or (colors is not None and len(content_paths) == 1)
    if not per_style:
        extra = " (or one colour-indexed mask)" if colors is not None else ""
        raise ValueError(f"{len(content_paths)} content masks for {k_styles} style images: give one per style{extra}")
    if style_paths is not None and len(style_paths) != k_styles:
        raise ValueError(f"{len(style_paths)} style masks for {k_styles} style images: give one per style")
    h, w = content.shape[-2:]
    sizes = [(int(s.shape[-2]), int(s.shape[-1])) for s in styles]
    if colors is None:
        regions = torch.cat([load_mask(p, (h, w)) for p in content_paths])
        style_masks = [load_mask(p, size) for p, size in zip(style_paths or (), sizes, strict=False)]
    else:
        rgb = parse_colors(colors)
        if len(content_paths) == 1:
            regions = load_color_masks(content_paths[0], rgb, (h, w), range(k_styles), colors)
        else:
            regions = torch.cat([load_color_masks(p, rgb, (h, w), [k], colors) for k, p in enumerate(content_paths)])
        style_masks = [load_color_masks(p, rgb, size, [k], colors)
                       for k, (p, size) in enumerate(zip(style_paths or (), sizes, strict=False))]
    if (regions.flatten(1).sum(dim=1) <= 0).any():
        # An ImageError, like any other problem with a file the user gave: the CLI answers it with exit code 2.
        raise images.ImageError("a content mask is empty (all black): each region needs some white")
    if not style_masks:  # the whole of each style image
        style_masks = [torch.ones_like(s[:, :1]) for s in styles]
    return Masks(regions.to(content), tuple(m.to(s) for m, s in zip(style_masks, styles, strict=True)))


def guides(masks: Tensor, shape: Sequence[int]) -> Tensor:
    """(K, 1, h, w) weights for features of ``shape`` (…, h, w): the masks resized, times sqrt(M / Σ m_k)."""
    h, w = int(shape[-2]), int(shape[-1])
    small = F.interpolate(masks, size=(h, w), mode="area")
    area = small.flatten(1).sum(dim=1).clamp_min(1e-6)
    return small * torch.sqrt(h * w / area).view(-1, 1, 1, 1)


def region_targets(style_features: Sequence[Tensor], style_masks: Sequence[Tensor]) -> Tensor:
    """(K, C, C) guided Gram targets: style image k's features at one layer, weighted by its style mask."""
    from stylegram.losses import gram_matrix

    grams = [gram_matrix(f * guides(m, f.shape)) for f, m in zip(style_features, style_masks, strict=True)]
    return torch.cat(grams)
