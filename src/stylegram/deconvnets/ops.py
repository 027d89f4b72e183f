"""The linear operators of one deconvolutional layer, and its objective.

A layer with K maps over an input of C channels has filters ``f`` of shape (K, C, s, s) and a binary
connectivity ``g`` of shape (K, C). Its maps ``z`` are "full" size, (B, K, H+s-1, W+s-1), and the
reconstruction of the (B, C, H, W) input is the "valid" part of the sum of convolutions:

    ŷ_c = Σ_k g_kc (z_k * f_kc)            (true convolution, so no sample of ŷ wraps around a border)

Filters are stored as convolution kernels (the atoms a figure shows, the same orientation as SPORCO's
dictionaries); ``conv2d`` correlates, so it is given the kernels flipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def weight(filters: Tensor, connectivity: Tensor) -> Tensor:
    """The (C, K, s, s) ``conv2d`` weight of a layer: kernels masked by ``g`` and flipped (conv2d correlates)."""
    masked = filters * connectivity.to(filters.dtype)[:, :, None, None]
    return masked.flip(-1, -2).transpose(0, 1).contiguous()


def reconstruct(maps: Tensor, w: Tensor) -> Tensor:
    """F z: (B, K, H+s-1, W+s-1) maps to the (B, C, H, W) reconstruction, with ``w`` from :func:`weight`."""
    return F.conv2d(maps, w)


def adjoint(residual: Tensor, w: Tensor) -> Tensor:
    """Fᵀ r: a (B, C, H, W) image-space tensor back to (B, K, H+s-1, W+s-1) map space."""
    return F.conv_transpose2d(residual, w)


def map_shape(shape: tuple[int, ...], filter_size: int, maps: int) -> tuple[int, int, int, int]:
    """The (B, K, H+s-1, W+s-1) shape of the maps that explain an input of ``shape`` (B, C, H, W)."""
    b, _, h, w = shape
    return b, maps, h + filter_size - 1, w + filter_size - 1


def sparsity(x: Tensor, p: float) -> Tensor:
    """Σ |x|^p per sample, (B,); p = 0 counts the non-zeros."""
    a = x.abs().flatten(1)
    if p == 1.0:
        return a.sum(1)
    if p == 0.0:
        return (a > 0).sum(1).to(x.dtype)
    return a.pow(p).sum(1)  # 0^p = 0 for p > 0, as the penalty needs


def objective(y: Tensor, maps: Tensor, w: Tensor, lam: float, p: float) -> dict[str, Tensor]:
    """The paper's C(z) = λ/2 ‖F z − y‖² + Σ |z|^p per sample: ``reconstruction``, ``sparsity`` and ``total``,
    each (B,)."""
    r = reconstruct(maps, w) - y
    rec = 0.5 * lam * r.pow(2).flatten(1).sum(1)
    sp = sparsity(maps, p)
    return {"reconstruction": rec, "sparsity": sp, "total": rec + sp}


def nonzero_fraction(x: Tensor) -> float:
    """The fraction of the entries of ``x`` that are not zero."""
    return float((x != 0).sum()) / max(1, x.numel())


def filter_gradient(maps: Tensor, residual: Tensor, filters: Tensor, connectivity: Tensor) -> Tensor:
    """Zᵀ r as filters: the (K, C, s, s) gradient of ½‖F z − y‖² with respect to the kernels, ``residual``
    being F z − y (B, C, H, W). Unconnected (k, c) pairs get zero."""
    c, k = filters.shape[1], filters.shape[0]
    # conv2d_weight gives the gradient of the (C, K, s, s) correlation weight; flip back to kernels.
    from torch.nn.grad import conv2d_weight

    gw: Tensor = conv2d_weight(maps, (c, k, *filters.shape[2:]), residual)  # type: ignore[no-untyped-call]
    return gw.transpose(0, 1).flip(-1, -2) * connectivity.to(filters.dtype)[:, :, None, None]


def project_filters(filters: Tensor, connectivity: Tensor) -> Tensor:
    """Project filters onto the paper's constraint: each connected (k, c) kernel scaled to unit ℓ2 norm.

    A kernel of (numerically) zero norm cannot be scaled; it is left as it is, and unconnected kernels are zero.
    """
    norms = filters.flatten(2).norm(dim=2)[:, :, None, None]
    scaled = torch.where(norms > 1e-12, filters / norms.clamp_min(1e-12), filters)
    return scaled * connectivity.to(filters.dtype)[:, :, None, None]


def pixel_filters(upper: Tensor, upper_g: Tensor, lower: Tensor, lower_g: Tensor) -> Tensor:
    """Filters of an upper layer drawn in the lower layer's input space, as the paper draws layer 2.

    ``upper`` (K2, K1, s2, s2) over the K1 maps of ``lower`` (K1, C, s1, s1): the kernel of upper map k in the
    lower input is Σ_c g_kc f2_kc * f1_c (full convolution), shape (K2, C, s1+s2-1, s1+s2-1).
    """
    u = upper * upper_g.to(upper.dtype)[:, :, None, None]
    low = lower * lower_g.to(lower.dtype)[:, :, None, None]
    s1 = low.shape[-1]
    # A full convolution of each upper kernel with each lower kernel: conv2d over the K1 axis as channels,
    # with the upper kernels padded so every overlap counts; flipping the lower one makes it a convolution.
    w = low.flip(-1, -2).transpose(0, 1)  # (C, K1, s1, s1)
    return F.conv2d(F.pad(u, (s1 - 1, s1 - 1, s1 - 1, s1 - 1)), w)
