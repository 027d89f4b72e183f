"""Conjugate gradients for a batch of independent symmetric positive definite systems A x = b.

The first axis of ``x`` and ``b`` indexes independent problems (one per image): every inner product is taken per
sample, so each system gets its own step sizes, as if it were solved alone. A fixed number of iterations, as
the paper runs, and no early exit: a sample that has converged gets zero steps (its residual is zero).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner products, shaped to broadcast against ``a``: (B, 1, 1, …)."""
    return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.dim() - 1)))


def conjugate_gradient(apply: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor, iterations: int,
                       dot: Callable[[Tensor, Tensor], Tensor] = _dot) -> Tensor:
    """``iterations`` CG steps on A x = b from ``x0`` (not modified); returns the new x.

    ``dot`` gives the per-sample inner products, shaped (B, 1, …), and must be real: the default suits real
    tensors; for vectors held as spectra pass the Parseval inner product
    (:meth:`~stylegram.deconvnets.fourier.ValidConvolution.dot`).

    Each step lowers ½xᵀAx − bᵀx (CG minimises it over a growing Krylov space around x0), which the paper's
    inference relies on: a z-step never raises the objective.
    """
    x = x0.clone()
    r = b - apply(x)
    d = r.clone()
    rr = dot(r, r)
    tiny = torch.finfo(rr.dtype).tiny
    for _ in range(iterations):
        ad = apply(d)
        dad = dot(d, ad)
        alpha = torch.where(dad > tiny, rr / dad.clamp_min(tiny), torch.zeros_like(rr))
        x.add_(alpha * d)
        r.sub_(alpha * ad)
        rr_new = dot(r, r)
        beta = torch.where(rr > tiny, rr_new / rr.clamp_min(tiny), torch.zeros_like(rr))
        d = r + beta * d
        rr = rr_new
    return x
