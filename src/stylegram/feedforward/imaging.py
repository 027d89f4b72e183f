"""Pure tensor operations of super-resolution: the paper's degradation (Gaussian blur, then bicubic
downsampling) and its post-processing (histogram matching to the low-resolution input)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel(sigma: float) -> Tensor:
    """The normalised 1-D Gaussian of standard deviation ``sigma`` pixels, radius ⌈3σ⌉: (2r + 1,) float64."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """(B, C, H, W) blurred by a separable Gaussian, reflecting at the borders; ``sigma`` 0 returns ``x``."""
    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma).to(x.device, x.dtype)
    r, c = k.numel() // 2, x.shape[1]
    y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # rows
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # columns


def degrade(hr: Tensor, scale: int, sigma: float = 1.0) -> Tensor:
    """The low-resolution input of a (B, 3, H, W) high-resolution image: blur, then bicubic ↓scale to
    (B, 3, H // scale, W // scale), clamped to [0, 1] (bicubic overshoots at edges)."""
    h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
    blurred = gaussian_blur(hr, sigma)
    lr = F.interpolate(blurred, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
    return lr.clamp(0.0, 1.0)


def match_histogram(y: Tensor, reference: Tensor, bins: int = 4096) -> Tensor:
    """``y`` (B, C, H, W) in [0, 1] with each image's channel histograms matched to ``reference`` (B, C, h, w)'s:
    the paper's post-processing of super-resolved outputs to the low-resolution input's colours.

    A value of ``y`` in bin k of ``bins`` equal bins goes to the reference's quantile at the middle of bin k's
    share of ``y``'s cumulative histogram (linear interpolation between the reference's sorted values), so the
    sizes may differ, the mapping is monotonic, and memory stays at a few copies of one row band of ``y``.
    """
    out = torch.empty_like(y)
    for i in range(y.shape[0]):
        for c in range(y.shape[1]):
            out[i, c] = _matched(y[i, c], reference[i, c].to(y.dtype), bins)
    return out


def _matched(v: Tensor, ref: Tensor, bins: int) -> Tensor:
    """One (H, W) channel mapped onto ``ref``'s distribution through a ``bins``-entry lookup table."""
    hist = torch.histc(v.float(), bins=bins, min=0.0, max=1.0)
    cdf = (hist.cumsum(0) - hist / 2) / max(1, v.numel())  # (bins,) share of values below each bin's middle
    ranked = ref.flatten().sort().values
    pos = cdf.to(v.dtype) * (ranked.numel() - 1)
    lo = pos.floor().long().clamp(0, ranked.numel() - 1)
    hi = (lo + 1).clamp(max=ranked.numel() - 1)
    frac = pos - lo.to(v.dtype)
    lut = ranked[lo] * (1 - frac) + ranked[hi] * frac  # (bins,) the value each bin maps to
    out = torch.empty_like(v)
    band = max(1, (1 << 22) // max(1, v.shape[-1]))  # rows per step: ~4M values, so the indices stay small
    for top in range(0, v.shape[0], band):
        rows = v[top : top + band]
        index = (rows.clamp(0, 1) * bins).long().clamp(max=bins - 1)  # histc's bins: [k/bins, (k+1)/bins)
        out[top : top + band] = lut[index]
    return out
