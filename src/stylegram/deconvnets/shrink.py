"""The w-step of the paper's inference: per-element shrinkage, argmin_w |w|^p + β/2 (w − v)².

p = 1 is the soft threshold at 1/β, p = 0 the hard threshold at √(2/β). For 0 < p < 1 the paper reads the
answer from a lookup table (with closed forms for p = 1/2 and 2/3, after Krishnan & Fergus 2009); here it is
computed instead, element by element, without a table: the minimiser is 0 or the larger root of
h(w) = p w^(p−1) + β (w − |v|) on w > 0, and h is convex there, so Newton's method started at |v| (right of
that root) climbs down to it monotonically. Both candidates are then compared on the objective itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NEWTON_STEPS = 12  # from |v| the iterates descend monotonically; 12 steps reach float32 round-off for β ≤ 1e6


def shrink(v: Tensor, beta: float, p: float) -> Tensor:
    """The element-wise minimiser of |w|^p + β/2 (w − v)² (0 ≤ p ≤ 1), same shape as ``v``; a new tensor."""
    if p == 1.0:
        return F.softshrink(v, 1.0 / beta)  # the soft threshold in one pass
    if p == 0.0:
        return torch.where(v.abs() > (2.0 / beta) ** 0.5, v, torch.zeros_like(v))
    return _shrink_fractional(v, beta, p)


def _shrink_fractional(v: Tensor, beta: float, p: float) -> Tensor:
    a = v.abs()
    # h'(w) = p(p−1) w^(p−2) + β vanishes at w_min; on [w_min, ∞) h is increasing and convex, and the larger
    # root (the only candidate minimum besides 0) lies in [w_min, |v|] when there is one.
    w_min = (p * (1.0 - p) / beta) ** (1.0 / (2.0 - p))
    w = a.clamp_min(w_min)
    for _ in range(NEWTON_STEPS):
        h = p * w.pow(p - 1.0) + beta * (w - a)
        dh = p * (p - 1.0) * w.pow(p - 2.0) + beta
        w = (w - h / dh).clamp(min=w_min)
        w = torch.minimum(w, a.clamp_min(w_min))
    at_root = w.pow(p) + 0.5 * beta * (w - a).pow(2)
    at_zero = 0.5 * beta * a.pow(2)
    keep = (at_root < at_zero) & (a > w_min)
    return torch.where(keep, torch.sign(v) * w, torch.zeros_like(v))


def penalty(w: Tensor, beta: float, p: float, v: Tensor) -> Tensor:
    """|w|^p + β/2 (w − v)², element-wise: the function :func:`shrink` minimises (for tests and checks)."""
    a = w.abs()
    term = (a > 0).to(w.dtype) if p == 0.0 else a.pow(p)
    return term + 0.5 * beta * (w - v).pow(2)
