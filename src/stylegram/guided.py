"""Spatial control with guided Gram matrices (Gatys et al. 2017, "Controlling Perceptual Factors", section 4).

Region k of the output (content mask k) takes its style from style image k (where its style mask k is on, the
whole image by default). Each region's Gram matrix is computed from the features weighted by its mask,
resized to the layer's resolution, and normalised by the mask's area instead of the layer's:

    G_k = (F ⊙ m_k)(F ⊙ m_k)ᵀ / Σ m_k

so regions of different sizes compare with their targets on the same scale. Implemented by scaling the masked
features by sqrt(M / Σ m_k), which makes :func:`losses.gram_matrix` (which divides by M) return G_k; the style
loss then sums E_l over the K regions, shaped (K, C, C).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from . import images


@dataclass(frozen=True)
class Masks:
    """Content masks (K, 1, H, W) at the output's size, and one style mask (1, 1, h, w) per style image."""

    content: Tensor
    style: tuple[Tensor, ...]


def load_mask(path: str, size: tuple[int, int]) -> Tensor:
    """A greyscale mask in [0, 1], (1, 1, H, W) at ``size`` = (H, W); colour images are averaged to grey."""
    grey = images.to_tensor(images.load_image(path)).mean(dim=1, keepdim=True)
    return F.interpolate(grey, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def load_masks(
    content_paths: Sequence[str], style_paths: Sequence[str] | None, content: Tensor, styles: Sequence[Tensor]
) -> Masks:
    """Masks for ``content`` and ``styles`` (tensors at their working sizes), one of each per style image."""
    if len(content_paths) != len(styles):
        raise ValueError(f"{len(content_paths)} content masks for {len(styles)} style images: give one per style")
    if style_paths is not None and len(style_paths) != len(styles):
        raise ValueError(f"{len(style_paths)} style masks for {len(styles)} style images: give one per style")
    h, w = content.shape[-2:]
    regions = torch.cat([load_mask(p, (h, w)) for p in content_paths]).to(content)
    if (regions.flatten(1).sum(dim=1) <= 0).any():
        # An ImageError, like any other problem with a file the user gave: the CLI answers it with exit code 2.
        raise images.ImageError("a content mask is empty (all black): each region needs some white")
    style_masks = tuple(
        load_mask(style_paths[i], (int(s.shape[-2]), int(s.shape[-1]))).to(s)
        if style_paths
        else torch.ones_like(s[:, :1])
        for i, s in enumerate(styles)
    )
    return Masks(regions, style_masks)


def guides(masks: Tensor, shape: Sequence[int]) -> Tensor:
    """(K, 1, h, w) weights for features of ``shape`` (…, h, w): the masks resized, times sqrt(M / Σ m_k)."""
    h, w = int(shape[-2]), int(shape[-1])
    small = F.interpolate(masks, size=(h, w), mode="area")
    area = small.flatten(1).sum(dim=1).clamp_min(1e-6)
    return small * torch.sqrt(h * w / area).view(-1, 1, 1, 1)


def region_targets(style_features: Sequence[Tensor], style_masks: Sequence[Tensor]) -> Tensor:
    """(K, C, C) guided Gram targets: style image k's features at one layer, weighted by its style mask."""
    from .losses import gram_matrix

    grams = [gram_matrix(f * guides(m, f.shape)) for f, m in zip(style_features, style_masks, strict=True)]
    return torch.cat(grams)
