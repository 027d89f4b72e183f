"""``sparse_code``: one convolutional sparse coding problem, solved by the paper's method or by ADMM.

Both solvers minimise the paper's objective, C(x) = λ/2 Σ_c ‖Σ_k g_kc (x_k * f_kc) − y_c‖² + Σ_k |x_k|^p (λ on
the data term, as the paper writes it; SPORCO's λ on the ℓ1 term is 1/λ here). With ``boundary="valid"`` (the
paper's) the maps are full size, (H+s−1)×(W+s−1), and nothing wraps around; ``"circular"`` is the problem SPORCO
solves, with maps the size of the signal and periodic convolution (ADMM only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep
from stylegram.deconvnets.admm import ConvBPDN
from stylegram.deconvnets.inference import infer, summed_terms
from stylegram.deconvnets.layer import Layer
from stylegram.deconvnets.options import AdmmOptions, InferenceOptions, LayerSpec


@dataclass(frozen=True)
class SparseCode:
    maps: Tensor  # (B, K, H+s-1, W+s-1) for the valid boundary, (B, K, H, W) for the circular one
    terms: dict[str, float]  # the paper's objective, summed over the batch: reconstruction, sparsity, total, nonzero
    iterations: int  # z/x alternations (zeiler) or ADMM iterations
    stopped: bool


def sparse_code(filters: Tensor, signal: Tensor, lam: float, *, solver: Literal["zeiler", "admm"] = "zeiler",
                p: float = 1.0, connectivity: Tensor | None = None,
                boundary: Literal["valid", "circular"] = "valid", inference: InferenceOptions | None = None,
                admm: AdmmOptions | None = None, on_step: OnStep | None = None) -> SparseCode:
    """Sparse maps of ``signal`` (B, C, H, W) under ``filters`` (K, C, s, s) convolution kernels.

    ``connectivity`` (K, C) bool says which channels each map explains (default: all). Events carry the
    objective terms and the non-zero fraction (ADMM's in its own units, see :mod:`stylegram.deconvnets.admm`).
    """
    _check(filters, signal, lam, solver, boundary)
    k, c, s = filters.shape[0], filters.shape[1], filters.shape[-1]
    g = torch.ones(k, c, dtype=torch.bool, device=filters.device) if connectivity is None else connectivity.bool()
    f = filters.to(signal)
    if solver == "zeiler":
        layer = Layer(LayerSpec(maps=k, filter=s, lam=lam, p=p), f, g.to(signal.device))
        r = infer(signal, layer, inference, on_step=on_step)
        return SparseCode(r.maps, r.terms, r.steps, r.stopped)
    if boundary == "circular":
        solved = ConvBPDN(f, signal, 1.0 / lam, admm, connectivity=g, p=p)
        result = solved.solve(on_step)
        rec = lam * result.terms["reconstruction"]
        terms = {"reconstruction": rec, "sparsity": result.terms["sparsity"],
                 "total": rec + result.terms["sparsity"], "nonzero": result.terms["nonzero"]}
        return SparseCode(result.maps, terms, result.iterations, result.stopped)
    # The valid problem as a masked circular one on the maps' grid: the signal sits in the last H×W samples.
    b, _, h, w = signal.shape
    grid = torch.zeros(b, c, h + s - 1, w + s - 1, dtype=signal.dtype, device=signal.device)
    grid[..., s - 1:, s - 1:] = signal
    mask = torch.zeros(1, c, h + s - 1, w + s - 1, dtype=signal.dtype, device=signal.device)
    mask[..., s - 1:, s - 1:] = 1.0
    result = ConvBPDN(f, grid, 1.0 / lam, admm, connectivity=g, mask=mask, p=p).solve(on_step)
    layer = Layer(LayerSpec(maps=k, filter=s, lam=lam, p=p), f, g.to(signal.device))
    return SparseCode(result.maps, summed_terms(signal, result.maps, layer.weight(), lam, p), result.iterations,
                      result.stopped)


def _check(filters: Tensor, signal: Tensor, lam: float, solver: str, boundary: str) -> None:
    if filters.dim() != 4 or filters.shape[-1] != filters.shape[-2]:
        raise UsageError(f"filters must be (K, C, s, s), got {tuple(filters.shape)}")
    if signal.dim() != 4 or signal.shape[1] != filters.shape[1]:
        raise UsageError(f"the signal must be (B, {filters.shape[1]}, H, W) for these filters, got "
                         f"{tuple(signal.shape)}")
    if not lam > 0:
        raise UsageError(f"lambda must be positive, got {lam}")
    if solver not in ("zeiler", "admm"):
        raise UsageError(f"solver must be zeiler or admm, got {solver!r}")
    if boundary not in ("valid", "circular"):
        raise UsageError(f"boundary must be valid or circular, got {boundary!r}")
    if solver == "zeiler" and boundary != "valid":
        raise UsageError("the paper's solver works on the valid boundary only; use solver='admm' for circular")
