"""Pure tensor operations of super-resolution: the paper's degradation (Gaussian blur, then bicubic
downsampling) and its post-processing (histogram matching to the low-resolution input)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from stylegram.core import images


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


BINS = 4096  # histogram bins of the post-processing: finer than 8-bit levels, so the mapping is smooth


def match_histogram(y: Tensor, reference: Tensor, bins: int = BINS) -> Tensor:
    """``y`` (B, C, H, W) in [0, 1] with each image's channel histograms matched to ``reference`` (B, C, h, w)'s:
    the paper's post-processing of super-resolved outputs to the low-resolution input's colours.

    A value of ``y`` in bin k of ``bins`` equal bins (:func:`bin_index`) goes to the reference's quantile at the
    middle of bin k's share of ``y``'s cumulative histogram (:func:`lookup_table`), so the sizes may differ, the
    mapping is monotonic, and memory stays at a few copies of one row band of ``y``.
    """
    out = torch.empty_like(y)
    for i in range(y.shape[0]):
        for c in range(y.shape[1]):
            v = y[i, c]
            bands = _bands(v.shape)
            if len(bands) == 1:  # small enough to hold its bin index: bin once
                index = bin_index(v, bins)
                out[i, c] = lookup_table(bin_counts(index, bins), reference[i, c])[index.int()].to(y.dtype)
                continue
            # Several bands: bin each twice (counting, then mapping), so only one band's index is held at a time.
            counts = torch.zeros(bins, dtype=torch.int64, device=v.device)
            for rows in bands:
                counts += bin_counts(bin_index(v[rows], bins), bins)
            lut = lookup_table(counts, reference[i, c])
            for rows in bands:
                out[i, c, rows] = lut[bin_index(v[rows], bins).int()].to(y.dtype)
    return out


def bin_index(v: Tensor, bins: int = BINS) -> Tensor:
    """The histogram bin (int16, 0 … bins − 1) of each value: bin k holds [k/bins, (k+1)/bins); values below 0
    or NaN fall in the first bin and values from 1 up in the last, where saving them would clamp them."""
    return (torch.nan_to_num(v, nan=0.0).clamp(0, 1) * bins).to(torch.int16).clamp_(max=bins - 1)


def bin_counts(index: Tensor, bins: int = BINS) -> Tensor:
    """(bins,) int64 number of entries of ``index`` (from :func:`bin_index`) in each bin."""
    return torch.bincount(index.flatten(), minlength=bins)


def lookup_table(counts: Tensor, reference: Tensor) -> Tensor:
    """(bins,) float32 value each bin maps to, given the (bins,) counts of the values to map and a reference
    channel: the reference's quantile (linear between its sorted values) at each bin's middle share."""
    counts = counts.to(torch.float64)
    cdf = (counts.cumsum(0) - counts / 2) / max(1.0, float(counts.sum()))
    ranked = reference.flatten().to(torch.float64).sort().values
    pos = cdf.to(ranked.device) * (ranked.numel() - 1)
    lo = pos.floor().long().clamp(0, ranked.numel() - 1)
    hi = (lo + 1).clamp(max=ranked.numel() - 1)
    frac = pos - lo.to(pos.dtype)
    return (ranked[lo] * (1 - frac) + ranked[hi] * frac).to(torch.float32)


def _bands(shape: torch.Size) -> list[slice]:
    """Row bands of an (H, W) channel of about 4M values each, so temporaries stay small."""
    step = max(1, (1 << 22) // max(1, shape[-1]))
    return [slice(top, top + step) for top in range(0, shape[0], step)]


class LevelCanvas:
    """An 8-bit (B, H, W, 3) CPU image assembled from float (B, 3, h, w) pieces in [0, 1] (tiles of a
    super-resolved output), equal to :func:`stylegram.core.images.levels` of the whole float image, with each
    channel's histogram matched to ``reference`` (B, 3, h₀, w₀) when one is given, as :func:`match_histogram`
    then rounding would give.

    Memory: without a reference, the 8-bit image (3 bytes per pixel) from the start. With one, the histogram
    needs every value before any can be mapped, so the pieces are kept as bin indices (int16, 6 bytes per
    pixel) and mapped in :meth:`finish` through each channel's table rounded to 8 bits (9 bytes per pixel
    then, 3 after). A float copy of the whole output (12 bytes per pixel) is never made.
    """

    def __init__(self, batch: int, height: int, width: int, reference: Tensor | None = None,
                 bins: int = BINS) -> None:
        self.shape = (batch, height, width)
        self.reference, self.bins = reference, bins
        self.levels: Tensor | None = None
        self.index: Tensor | None = None
        if reference is None:
            self.levels = torch.empty(batch, height, width, 3, dtype=torch.uint8)
        else:
            self.index = torch.empty(batch, 3, height, width, dtype=torch.int16)
            self.counts = torch.zeros(batch, 3, bins, dtype=torch.int64)

    def put(self, piece: Tensor, top: int, left: int) -> None:
        """Place the float ``piece`` with its top-left corner at output pixel (top, left)."""
        rows, cols = slice(top, top + piece.shape[-2]), slice(left, left + piece.shape[-1])
        if self.index is None:
            assert self.levels is not None
            self.levels[:, rows, cols, :] = images.levels(piece).permute(0, 2, 3, 1).cpu()
            return
        index = bin_index(piece, self.bins)
        for b in range(index.shape[0]):
            for c in range(index.shape[1]):
                self.counts[b, c] += bin_counts(index[b, c], self.bins).cpu()
        self.index[:, :, rows, cols] = index.cpu()

    def finish(self) -> Tensor:
        """The (B, H, W, 3) uint8 image; the bin indices are released."""
        if self.index is not None:
            assert self.reference is not None
            batch, height, width = self.shape
            self.levels = torch.empty(batch, height, width, 3, dtype=torch.uint8)
            for b in range(batch):
                for c in range(3):
                    table = images.levels(lookup_table(self.counts[b, c], self.reference[b, c])).cpu()
                    for rows in _bands(self.index.shape[-2:]):
                        self.levels[b, rows, :, c] = table[self.index[b, c, rows].int()]
            self.index = None
        assert self.levels is not None
        return self.levels
