"""The paper's input: a greyscale, contrast-normalised image.

Zeiler et al. feed layer 1 greyscale images that are contrast normalised. The normalisation here is the local
one of Jarrett et al. (2009), which the same group used: subtract a Gaussian-weighted local mean, then divide by
the Gaussian-weighted local standard deviation wherever it exceeds its mean over the image (so flat regions are
not blown up into noise). The window is a 9×9 Gaussian of σ = 2 px; borders are reflected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW, SIGMA = 9, 2.0
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def greyscale(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] to (B, 1, H, W) luma; a (B, 1, H, W) input is returned as it is."""
    if image.dim() != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"expected an image tensor (B, 3, H, W) or (B, 1, H, W), got {tuple(image.shape)}")
    if image.shape[1] == 1:
        return image
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)


def _window(dtype: torch.dtype, device: torch.device) -> Tensor:
    r = torch.arange(WINDOW, dtype=dtype, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-0.5 * (r / SIGMA) ** 2)
    k = g[:, None] * g[None, :]
    return (k / k.sum()).view(1, 1, WINDOW, WINDOW)


def _local_mean(x: Tensor, k: Tensor) -> Tensor:
    pad = WINDOW // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode=mode), k)


def local_contrast(grey: Tensor) -> Tensor:
    """Local subtractive and divisive normalisation of (B, 1, H, W) greyscale images, each on its own."""
    k = _window(grey.dtype, grey.device)
    v = grey - _local_mean(grey, k)
    sigma = _local_mean(v.square(), k).clamp_min(0).sqrt()
    floor = sigma.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-4)  # a flat image stays flat
    return v / torch.maximum(sigma, floor)


def preprocess(image: Tensor, contrast: str = "local") -> Tensor:
    """The layer-1 input for an RGB (or greyscale) image batch: greyscale, then ``contrast`` (local or none)."""
    grey = greyscale(image)
    return local_contrast(grey) if contrast == "local" else grey
