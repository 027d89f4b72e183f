"""Fidelity metrics of super-resolution as the field computes them (the MATLAB code of the SRCNN era, and BasicSR
after it): PSNR and SSIM on the luma channel of 8-bit images, with ``scale`` pixels of border cropped.

Every function takes pixel values on the 0–255 scale, float tensors (B, C, H, W), and returns one value per image
(B,). The conventions, each of which moves published numbers by tenths of a dB:

* **8-bit images.** An output is scored as the PNG a user gets: :func:`levels` rounds [0, 1] floats to 0–255
  integers exactly as :func:`stylegram.core.images.to_pil` does.
* **Y of ITU-R BT.601, studio swing**: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in 0–255, so
  Y lies in [16, 235] (MATLAB's ``rgb2ycbcr``; not rounded, as BasicSR's ``to_y_channel``). The peak of PSNR is
  still 255.
* **Border crop** of ``scale`` pixels on every side (:func:`shave`) before anything is measured.
* **SSIM** (Wang et al. 2004) with an 11 × 11 Gaussian window of σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, the
  statistics taken over the window with weights (population, not sample, covariance), and the SSIM map averaged
  over the "valid" positions only (where the whole window lies inside the image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PEAK = 255.0
BT601 = (65.481, 128.553, 24.966)  # R, G, B weights of Y for R, G, B in [0, 1]; 16 is added
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def levels(x: Tensor) -> Tensor:
    """(B, C, H, W) in [0, 1] → float64 0–255 integers, the values an 8-bit image file stores."""
    return torch.nan_to_num(x.double(), nan=0.0).clamp(0, 1).mul(255).round()


def luma(rgb: Tensor) -> Tensor:
    """Y of BT.601 (studio swing, in [16, 235]) of (B, 3, H, W) RGB on the 0–255 scale: (B, 1, H, W)."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected an RGB batch (B, 3, H, W), got {tuple(rgb.shape)}")
    w = torch.tensor(BT601, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return 16.0 + (rgb * w).sum(dim=1, keepdim=True) / 255.0


def shave(x: Tensor, border: int) -> Tensor:
    """(B, C, H, W) without ``border`` pixels on every side; ValueError when nothing would be left."""
    if border < 0:
        raise ValueError(f"border must be at least 0, got {border}")
    h, w = x.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"a {w}×{h} image has nothing left after cropping {border} pixels from each side")
    return x[..., border : h - border, border : w - border] if border else x


def psnr(a: Tensor, b: Tensor, peak: float = PEAK) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, over all channels and pixels; inf where a equals b."""
    _same_shape(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(peak**2 / mse)  # mse 0 → inf, as skimage gives


def ssim(a: Tensor, b: Tensor, peak: float = PEAK) -> Tensor:
    """Structural similarity per image (the mean over channels of each channel's mean SSIM map); see the
    module docstring for the window and constants. Images need sides of at least 11 pixels."""
    _same_shape(a, b)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, got "
                         f"{a.shape[-1]}×{a.shape[-2]}")
    x, y = a.double(), b.double()
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    mx, my = _window_mean(x), _window_mean(y)
    # Weighted (co)variances as E[xy] − E[x]E[y] with the window's weights: population statistics.
    vx = _window_mean(x * x) - mx * mx
    vy = _window_mean(y * y) - my * my
    cov = _window_mean(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return value.flatten(2).mean(dim=2).mean(dim=1)


def _window_mean(x: Tensor) -> Tensor:
    """The Gaussian-weighted mean over each 11 × 11 window that lies inside the image: (B, C, H − 10, W − 10)."""
    r = SSIM_WINDOW // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=x.device)
    k = torch.exp(-(t**2) / (2 * SSIM_SIGMA**2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    y = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # rows, "valid"
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # columns, "valid"


def scores(sr: Tensor, hr: Tensor, border: int) -> dict[str, Tensor]:
    """PSNR-Y, SSIM-Y and RGB PSNR per image of super-resolved ``sr`` against ``hr``, both (B, 3, H, W) in
    [0, 1], rounded to 8 bits and with ``border`` pixels cropped (the field's convention: border = scale)."""
    a, b = shave(levels(sr), border), shave(levels(hr), border)
    ya, yb = luma(a), luma(b)
    return {"psnr_y": psnr(ya, yb), "ssim_y": ssim(ya, yb), "psnr_rgb": psnr(a, b)}


def _same_shape(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")

