"""The paper's inference for one layer: z-step by conjugate gradients, x-step by shrinkage, β by continuation.

C(z) = λ/2 ‖F z − y‖² + Σ|z|^p is not smooth, so the paper splits it with an auxiliary copy x of the maps,

    C_β(z, x) = λ/2 ‖F z − y‖² + β/2 ‖z − x‖² + Σ|x|^p,

and alternates: for x fixed, z solves (λFᵀF + βI) z = λFᵀy + βx (CG, warm-started at the previous z); for z fixed,
x = shrink(z, β, p) element by element. β starts small (z free to reconstruct) and grows until z ≈ x: the maps
become sparse. Both steps lower C_β, so at fixed β the objective never rises (a test checks it).

The maps returned are the sparse copy x after the last z-step; the objective reported is the paper's C at x.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from stylegram.core.events import OnStep, StepEvent
from stylegram.deconvnets import fourier, ops
from stylegram.deconvnets.cg import conjugate_gradient
from stylegram.deconvnets.fourier import ValidConvolution
from stylegram.deconvnets.layer import Layer
from stylegram.deconvnets.options import InferenceOptions
from stylegram.deconvnets.shrink import shrink


@dataclass(frozen=True)
class InferenceResult:
    maps: Tensor  # x: the sparse maps (B, K, H+s-1, W+s-1)
    smooth: Tensor  # z: the maps of the last z-step (warm start of the next inference)
    terms: dict[str, float]  # C at x summed over the batch: reconstruction, sparsity, total; and nonzero
    steps: int  # z/x alternations done
    stopped: bool


def z_step(y: Tensor, x: Tensor, z: Tensor, op: ValidConvolution, lam: float, beta: float,
           iterations: int) -> Tensor:
    """CG on (λFᵀF + βI) z = λFᵀy + βx from ``z``; y (B, C, H, W), x and z (B, K, H+s-1, W+s-1)."""
    zh = _z_step(fourier.rfft(z), x, op.adjoint(y).mul_(lam), op, lam, beta, iterations)
    return fourier.irfft(zh, op.grid)


def _z_step(zh: Tensor, x: Tensor, lam_aty: Tensor, op: ValidConvolution, lam: float, beta: float,
            iterations: int) -> Tensor:
    # CG runs on spectra: FᵀF costs 2C FFTs there (see fourier.ValidConvolution); λFᵀy is fixed per inference.
    def apply(v: Tensor) -> Tensor:
        return op.adjoint(op.forward(v)).mul_(lam).add_(v, alpha=beta)

    rhs = fourier.rfft(x).mul_(beta).add_(lam_aty)
    return conjugate_gradient(apply, rhs, zh, iterations, dot=op.dot)


def x_step(z: Tensor, beta: float, p: float) -> Tensor:
    """argmin_x β/2 ‖z − x‖² + Σ|x|^p, element by element."""
    return shrink(z, beta, p)


def relaxed_objective(y: Tensor, z: Tensor, x: Tensor, w: Tensor, lam: float, p: float, beta: float) -> float:
    """C_β(z, x) summed over the batch, in float64: the quantity each step of the alternation lowers."""
    r = ops.reconstruct(z, w) - y
    value = 0.5 * lam * r.double().square().sum() + 0.5 * beta * (z - x).double().square().sum()
    return float(value + ops.sparsity(x.double(), p).sum())


def summed_terms(y: Tensor, x: Tensor, w: Tensor | ValidConvolution, lam: float, p: float) -> dict[str, float]:
    """The paper's objective at x, summed over the batch, with the fraction of non-zero map entries; ``w`` is
    the layer's conv2d weight or its :class:`~stylegram.deconvnets.fourier.ValidConvolution`."""
    fx = w.forward(fourier.rfft(x)) if isinstance(w, ValidConvolution) else ops.reconstruct(x, w)
    rec = 0.5 * lam * float((fx - y).double().square().sum())
    sp = float(ops.sparsity(x.double(), p).sum())
    return {"reconstruction": rec, "sparsity": sp, "total": rec + sp, "nonzero": ops.nonzero_fraction(x)}


def infer(y: Tensor, layer: Layer, options: InferenceOptions | None = None, *, init: Tensor | None = None,
          on_step: OnStep | None = None) -> InferenceResult:
    """Sparse maps of ``y`` (B, C, H, W) under ``layer``: the paper's continuation from ``init`` (default zeros).

    One event per z/x alternation, with the objective at the current sparse maps, their non-zero fraction and β;
    ``on_step`` returning True stops after that alternation.
    """
    o = options or InferenceOptions()
    op = ValidConvolution(layer.filters.to(y), layer.connectivity.to(y.device), (y.shape[-2], y.shape[-1]))
    lam, p = layer.spec.lam, layer.spec.p
    z = init.clone() if init is not None else torch.zeros(
        ops.map_shape(tuple(y.shape), layer.size, layer.maps), dtype=y.dtype, device=y.device)
    zh, lam_aty = fourier.rfft(z), op.adjoint(y).mul_(lam)
    betas = o.betas()
    total, step, t0 = len(betas) * o.alternations, 0, time.perf_counter()
    beta, stopped = betas[0], False
    for beta in betas:
        for _ in range(o.alternations):
            x = x_step(z, beta, p)
            zh = _z_step(zh, x, lam_aty, op, lam, beta, o.cg_iterations)
            z = fourier.irfft(zh, op.grid)
            step += 1
            if on_step is not None:
                losses = {**summed_terms(y, x_step(z, beta, p), op, lam, p), "beta": beta}
                stopped = bool(on_step(StepEvent(step, total, losses, time.perf_counter() - t0)))
                if stopped:
                    break
        if stopped:
            break
    x = x_step(z, beta, p)
    return InferenceResult(x, z, summed_terms(y, x, op, lam, p), step, stopped)
