"""Colour handling for style transfer (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

Luminance-only transfer: stylise the luminance channel alone, after matching the style's luminance mean and
spread to the content's, then put the content's chrominance back. The output keeps the content's colours.
All tensors are RGB (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

# RGB -> YIQ (NTSC). Y is the luminance; I and Q carry the colour.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ]
)


def _mix(x: Tensor, matrix: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(x), x)


def rgb_to_yiq(x: Tensor) -> Tensor:
    return _mix(x, _RGB_TO_YIQ)


def yiq_to_rgb(x: Tensor) -> Tensor:
    return _mix(x, torch.linalg.inv(_RGB_TO_YIQ.double()).float())


def luminance(x: Tensor) -> Tensor:
    """Y channel as a (B, 1, H, W) tensor."""
    return rgb_to_yiq(x)[:, :1]


def grey_rgb(y: Tensor) -> Tensor:
    """A luminance map (B, 1, H, W) as a grey RGB image, the form the network takes."""
    return y.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """The style's luminance, shifted and scaled to the content's mean and standard deviation.

    Gatys et al. 2017 (section 5.1): a linear map of the style luminance so that the two images' luminance
    histograms agree in their first two moments; a grey (B, 3, H, W) image of that luminance is returned.
    """
    ys, yc = luminance(style), luminance(content)
    std_s = ys.std().clamp_min(1e-6)
    matched = (ys - ys.mean()) * (yc.std() / std_s) + yc.mean()
    return grey_rgb(matched.clamp(0, 1))


def keep_colors(stylised: Tensor, content: Tensor) -> Tensor:
    """The stylised image's luminance with the content's chrominance (I, Q)."""
    y = luminance(stylised)
    iq = rgb_to_yiq(content)[:, 1:]
    if iq.shape[-2:] != y.shape[-2:]:
        iq = torch.nn.functional.interpolate(iq, size=y.shape[-2:], mode="bilinear", align_corners=False)
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)


def _mean_cov(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image colour mean (3,) and covariance (3, 3) of a (1, 3, H, W) image, in float64."""
    pixels = x[0].reshape(3, -1).double()
    mean = pixels.mean(dim=1)
    centred = pixels - mean[:, None]
    return mean, centred @ centred.T / max(pixels.shape[1] - 1, 1)


def _sqrtm(cov: Tensor, inverse: bool = False) -> Tensor:
    """Symmetric square root (or inverse square root) of a covariance, with a floor on tiny eigenvalues."""
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    root: Tensor = (vectors * values.pow(power)) @ vectors.T
    return root


def match_color_histogram(style: Tensor, content: Tensor) -> Tensor:
    """The style image with its colour distribution moved to the content's (Gatys et al. 2017, section 5.2).

    A linear map x' = A (x − μ_s) + μ_c with A = Σ_c^½ Σ_s^−½ (the symmetric "image analogies" variant the
    paper uses), so the recoloured style has the content's colour mean and covariance; stylising with it keeps
    the content's colours while the strokes stay the painting's. Images are (1, 3, H, W) RGB in [0, 1].
    """
    mu_s, cov_s = _mean_cov(style)
    mu_c, cov_c = _mean_cov(content)
    a = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True)
    flat = style[0].reshape(3, -1).double()
    mapped = a @ (flat - mu_s[:, None]) + mu_c[:, None]
    return mapped.reshape(1, *style.shape[1:]).to(style.dtype).clamp(0, 1)
