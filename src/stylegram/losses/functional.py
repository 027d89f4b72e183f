"""Perceptual losses as pure tensor functions (Gatys et al. 2016; Johnson et al. 2016).

Notation follows Gatys et al.: a layer l has N_l feature maps of M_l = H·W positions; F^l (N_l × M_l) holds the
generated image's responses, P^l the content image's, G^l = F^l F^lᵀ and A^l the Gram matrices of the generated
and the style image.

All functions take batched feature maps (B, C, H, W) and return a scalar (summed over the batch), so that a
batch of B images costs B times one image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def _check_features(f: Tensor, name: str = "features") -> None:
    if f.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(f.shape)}")


class _Gram(torch.autograd.Function):
    """G = F Fᵀ / M with a one-product backward.

    Autograd's own bmm backward differentiates F and Fᵀ as two inputs: two (C × C)·(C × M) products plus an
    accumulation of two (C, M) gradients. Since ∂L/∂F = (dG + dGᵀ) F / M, one product does, which saves about
    a third of the Gram arithmetic and a pass over the largest feature maps per evaluation.
    """

    @staticmethod
    def forward(ctx: Any, flat: Tensor) -> Tensor:  # flat: (B, C, M)
        ctx.save_for_backward(flat)
        return torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[2]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # grad: (B, C, C)
        (flat,) = ctx.saved_tensors
        # Scale the small (C, C) factor, not the (C, M) product.
        out: Tensor = torch.bmm((grad + grad.transpose(1, 2)) / flat.shape[2], flat)
        return out


def gram_matrix(f: Tensor) -> Tensor:
    """Gram matrices G = F Fᵀ / M of (B, C, H, W) features, shape (B, C, C).

    Departure from the paper, in form only: the paper's G is not divided by M. Dividing here keeps the
    entries O(activation²) whatever the image size, which is better conditioned in float32;
    :func:`style_layer_loss` multiplies the M back so the loss equals the paper's E_l exactly.
    """
    _check_features(f)
    b, c, h, w = f.shape
    out: Tensor = _Gram.apply(f.reshape(b, c, h * w))  # type: ignore[no-untyped-call]
    return out


def content_loss(f: Tensor, p: Tensor) -> Tensor:
    """The paper's content loss ½ Σ (F − P)² (its equation 1)."""
    _check_features(f)
    if f.shape[1:] != p.shape[1:]:
        raise ValueError(f"content features {tuple(f.shape)} and target {tuple(p.shape)} differ in shape")
    return 0.5 * (f - p).pow(2).sum()


def style_layer_loss(g: Tensor, a: Tensor) -> Tensor:
    """The paper's E_l = 1/(4 N² M²) Σ (G − A)², given Gram matrices normalised by M (:func:`gram_matrix`).

    With Ĝ = G/M and Â = A/M (shaped (B, N, N) or (N, N)): 1/(4N²M²) Σ(G − A)² = 1/(4N²) Σ(Ĝ − Â)².
    """
    if g.shape[-2:] != a.shape[-2:] or g.shape[-1] != g.shape[-2]:
        raise ValueError(f"Gram matrices {tuple(g.shape)} and {tuple(a.shape)} must be square and alike")
    n = g.shape[-1]
    return (g - a).pow(2).sum() / (4.0 * n * n)


def style_loss(
    features: Mapping[str, Tensor], targets: Mapping[str, Tensor], weights: Mapping[str, float]
) -> Tensor:
    """The paper's L_style = Σ_l w_l E_l over the layers in ``weights`` (its equation 5).

    ``targets`` are normalised Gram matrices (N, N) or (B, N, N) of the style image(s).
    """
    total: Tensor | None = None
    for layer, w in weights.items():
        f = features[layer]
        e = style_layer_loss(gram_matrix(f), targets[layer])
        total = w * e if total is None else total + w * e
    if total is None:
        raise ValueError("style_loss needs at least one layer")
    return total


TV_EPS = 1e-3
"""The smoothing of the absolute value in the l1 total variation: a quarter of one grey level (0–1 scale)."""

TV_CHROMA_SCALE = 4.0 / 255.0
"""τ of the chroma part of ``norm="l1-chroma"``: a chroma difference d costs d²/(2τ) on top of the l1 form, as
much again as its |d| at d = 2τ (8 grey levels), less below (smooth colour changes), more above (colour specks)."""

_CHROMA = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))  # ITU-R BT.601 Cb, Cr


def total_variation(x: Tensor, norm: str = "l2") -> Tensor:
    """Σ ρ(x[i+1,j] − x[i,j]) + ρ(x[i,j+1] − x[i,j]) over a (B, C, H, W) image: a smoothness prior.

    ``norm="l2"``: ρ(d) = d², the squared form (Mahendran & Vedaldi's β = 2, Johnson et al.'s code), which
    penalises a strong edge far more than many faint ripples. ``norm="l1"``: ρ(d) = √(d² + ε²) − ε (ε =
    :data:`TV_EPS`), the absolute value smoothed at zero (as neural-style's TV, which is |d|), which penalises
    faint high-frequency ripple (speckle) as much as its amplitude and leaves edges their contrast.
    ``norm="l1-chroma"`` (RGB images): the l1 form plus d²/(2τ) (τ = :data:`TV_CHROMA_SCALE`) of the
    differences' two BT.601 chroma components: brightness edges and strokes keep their contrast, while colour
    may change only smoothly at the pixel scale (as the eye's colour acuity, and a painting's colour fields), so
    an isolated coloured pixel, cheap under l1 alone, costs the square of its colour contrast.
    """
    _check_features(x, "image")
    if norm not in ("l1", "l2", "l1-chroma"):
        raise ValueError(f"norm must be 'l1', 'l2' or 'l1-chroma', got {norm!r}")
    if norm == "l1-chroma":
        if x.shape[1] != 3:
            raise ValueError(f"the l1-chroma total variation needs an RGB image, got {x.shape[1]} channels")
        chroma = torch.nn.functional.conv2d(x, x.new_tensor(_CHROMA).view(2, 3, 1, 1))
        return total_variation(x, "l1") + total_variation(chroma, "l2") / (2 * TV_CHROMA_SCALE)
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]
    if norm == "l1":
        eps2 = TV_EPS * TV_EPS
        return (dh.pow(2) + eps2).sqrt().sum() + (dw.pow(2) + eps2).sqrt().sum() - TV_EPS * (dh.numel() + dw.numel())
    return dh.pow(2).sum() + dw.pow(2).sum()


def blend_grams(grams: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Weighted mean of several style images' Gram matrices, the target for blended styles.

    Weights are normalised to sum to 1 (as neural-style does), so ``2,1`` means two thirds and one third.
    """
    if len(grams) != len(weights) or not grams:
        raise ValueError("need one weight per Gram matrix, and at least one")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("blend weights must be non-negative and not all zero")
    total = float(sum(weights))
    out = grams[0] * (weights[0] / total)
    for g, w in zip(grams[1:], weights[1:], strict=True):
        out = out + g * (w / total)
    return out
