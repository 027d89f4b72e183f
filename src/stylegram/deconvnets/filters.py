"""The filter update: with the maps fixed, least squares in the filters under the paper's unit-norm constraint.

E(f) = λ/2 Σ_i ‖Σ_k g_kc (x_ik * f_kc) − y_ic‖² is quadratic in f, and every connected kernel must keep unit ℓ2
norm. Departure from the paper: it solves the unconstrained least squares by CG and then rescales each kernel to
unit length, but the rescaling undoes much of the fit (on our images the objective after the update is ~6 % higher
than this way). Here it is projected gradient instead: steps of 1/L along −∇E (L, the largest eigenvalue of ZᵀZ,
by a few power iterations), each followed by the projection onto unit-norm kernels; it converges in a few steps.
All images count in one problem, so the filters fit the whole training set.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stylegram.deconvnets import ops
from stylegram.deconvnets.layer import Layer

POWER_ITERATIONS = 10


def _normal(maps: Tensor, f: Tensor, g: Tensor) -> Tensor:
    """ZᵀZ f: the filters' normal operator for fixed maps."""
    return ops.filter_gradient(maps, ops.reconstruct(maps, ops.weight(f, g)), f, g)


def lipschitz(maps: Tensor, shape: torch.Size, g: Tensor, generator: torch.Generator | None = None) -> float:
    """An estimate (from below, within a few %) of the largest eigenvalue of ZᵀZ, by power iteration."""
    v = torch.randn(shape, generator=generator).to(maps) * g.to(maps.dtype)[:, :, None, None]
    value = 1.0
    for _ in range(POWER_ITERATIONS):
        v = _normal(maps, v / v.norm().clamp_min(1e-30), g)
        value = float(v.norm())
    return max(value, 1e-12)


def update_filters(y: Tensor, maps: Tensor, layer: Layer, iterations: int) -> Layer:
    """The layer with filters refitted to reconstruct ``y`` (B, C, H, W) from ``maps`` (B, K, H+s-1, W+s-1)."""
    g = layer.connectivity.to(y.device)
    f = layer.filters
    # A fixed seed: the update (hence learning, and a resumed run) must not depend on the global RNG. Power
    # iteration underestimates L a little, so the step is a little over 1/L: still well below the 2/L at which
    # gradient steps stop lowering E.
    step = 1.0 / lipschitz(maps, f.shape, g, torch.Generator().manual_seed(0))
    for _ in range(iterations):
        grad = ops.filter_gradient(maps, ops.reconstruct(maps, ops.weight(f, g)) - y, f, g)
        f = ops.project_filters(f - step * grad, g)
    return layer.with_filters(f)
