"""Convolutional basis pursuit denoising by ADMM with per-frequency x-steps (Wohlberg 2016), as SPORCO solves it.

    min_x  ½ Σ_c ‖W ⊙ (Σ_k g_kc d_kc ⊛ x_k − s_c)‖² + λ Σ_k |x_k|^p

with ⊛ the circular convolution on the signal's N1×N2 grid. Without a mask W this is SPORCO's ``ConvBPDN``: the
splitting x = y gives an x-step (AᴴA + ρI) x̂ = Aᴴŝ + ρ(ŷ − û) solved per frequency, a y-step that shrinks, and
the scaled dual update; the defaults (ρ = 50λ + 1, over-relaxation 1.8, ρ balanced against the residuals every
iteration, relative stopping tolerance) are SPORCO's, so the two run the same iterations.

With a mask W (the "mask decoupling" of Wohlberg's boundary-handling paper, 2016) the data term only counts the
samples where W = 1; the splitting [D; I] x = [y0; y1] leaves a ρ-free x-step (AᴴA + I) x̂ = … and a y0-step that
is a per-sample average. That is how :func:`~stylegram.deconvnets.sparse_code` solves the paper's valid-boundary
problem by ADMM: the maps live on the full (H+s−1)×(W+s−1) grid and W selects the valid part.

For p < 1 the y-step uses the paper's generalised shrinkage; ADMM is then a heuristic (the problem is not convex).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from stylegram.core.events import OnStep, StepEvent
from stylegram.deconvnets import fourier
from stylegram.deconvnets.options import AdmmOptions
from stylegram.deconvnets.shrink import shrink


@dataclass(frozen=True)
class AdmmResult:
    maps: Tensor  # (B, K, N1, N2): the sparse variable y of the last iteration
    terms: dict[str, float]  # reconstruction (½‖·‖²), sparsity (Σ|y|^p), total (reconstruction + λ·sparsity)
    iterations: int
    converged: bool  # both normalised residuals fell below rel_tol
    stopped: bool  # on_step asked to stop
    rho: float
    elapsed: float


class ConvBPDN:
    """One ADMM problem: ``filters`` (K, C, s1, s2) convolution kernels, ``signal`` (B, C, N1, N2), ``l1_weight`` λ.

    ``connectivity`` (K, C) masks the kernels; ``mask`` (1 or B, C, N1, N2) of zeros and ones makes it the
    masked problem. :meth:`step` runs one iteration (its state persists, so a solve can be continued or, with
    :meth:`set_filters`, interleaved with dictionary updates); :meth:`solve` runs to the tolerance.
    """

    def __init__(self, filters: Tensor, signal: Tensor, l1_weight: float, options: AdmmOptions | None = None, *,
                 connectivity: Tensor | None = None, mask: Tensor | None = None, p: float = 1.0) -> None:
        o = options or AdmmOptions()
        self.options, self.l1, self.p = o, float(l1_weight), float(p)
        self.s = signal
        self.grid: tuple[int, int] = (int(signal.shape[-2]), int(signal.shape[-1]))
        self.mask = None if mask is None else mask.to(signal.dtype)
        self.rho = float(o.rho if o.rho is not None else 50.0 * self.l1 + 1.0)
        self.xi = float(o.rho_target if o.rho_target is not None else
                        (1.0 + 18.3 ** (math.log10(self.l1) + 1.0) if self.l1 > 0 else 1.0))
        self.auto_rho = o.auto_rho if o.auto_rho is not None else mask is None
        self.k = 0
        self.set_filters(filters, connectivity)
        b, k = signal.shape[0], filters.shape[0]
        zeros = torch.zeros((b, k, *self.grid), dtype=signal.dtype, device=signal.device)
        self.x, self.y, self.u = zeros, zeros.clone(), zeros.clone()
        if self.mask is not None:
            self.y0, self.u0 = torch.zeros_like(signal), torch.zeros_like(signal)

    def set_filters(self, filters: Tensor, connectivity: Tensor | None = None) -> None:
        """Use new kernels from the next iteration on (ADMM's state is kept)."""
        self.spectrum = fourier.Spectrum(filters, connectivity, self.grid)
        # The masked x-step matrix is AᴴA + I whatever ρ is; the plain one is AᴴA + ρI.
        self.solver = fourier.FrequencySolver(self.spectrum, 1.0 if self.mask is not None else self.rho)
        if self.mask is None:
            self.s_hat = fourier.rfft(self.s)

    # ------------------------------------------------------------------------------------------ iterations

    def step(self) -> tuple[float, float]:
        """One ADMM iteration; returns the normalised primal and dual residuals (SPORCO's definitions)."""
        r, s = self._step_masked() if self.mask is not None else self._step_plain()
        self._update_rho(r, s)
        self.k += 1
        return r, s

    def _step_plain(self) -> tuple[float, float]:
        if self.solver.a.shape[0] != 1:
            return self._step_plain_dense()
        # One channel: the iteration is map by map apart from one sum over the maps per frequency, so on the CPU
        # it runs over groups of maps small enough to stay in cache, in two sweeps: the spectra of y − u and
        # their filter-weighted sum Σ_k a_k ẑ_k; then, per group, the x-step, the shrinkage, the dual update
        # and the partial sums of the residual norms. Each map is read and written about twice per iteration
        # instead of some twenty times; on a GPU the group is all the maps.
        o, grid, sp = self.options, self.grid, self.spectrum
        groups = fourier.map_groups(self.y)
        zs = [fourier.rfft(self.y[:, g] - self.u[:, g]) for g in groups]  # contiguous per group: FFTs want it
        t = torch.zeros_like(zs[0][:, 0])
        for g, z in zip(groups, zs, strict=True):
            for j, k in enumerate(range(g.start, g.stop)):
                t.addcmul_(sp.a[k], z[:, j])
        t.neg_().add_(self.s_hat[:, 0]).mul_(self.solver.inv)  # (ŝ − Σ a ẑ)/(ρ + Σ|a|²): Sherman–Morrison
        y_new = torch.empty_like(self.y)
        sums = torch.zeros(5, dtype=torch.float64, device=self.y.device)  # ‖x‖², ‖y‖², ‖u‖², ‖x−y‖², ‖Δy‖²
        beta = self.rho / self.l1
        for g, z in zip(groups, zs, strict=True):
            x = fourier.irfft(z.addcmul_(sp.a_conj[g], t[:, None]), grid)  # (AᴴA + ρI) x̂ = ρẑ + Aᴴŝ
            y, u = self.y[:, g], self.u[:, g]
            v = torch.add(u, x, alpha=o.relax)  # u + αx + (1−α)y: the relaxed x plus the dual
            if o.relax != 1.0:
                v.add_(y, alpha=1.0 - o.relax)
            yg = shrink(v, beta, self.p)
            u.copy_(v.sub_(yg))  # u + xr − y (norms below of contiguous tensors: a strided view's is slow)
            nx, ny, nu = squared_norm(x), squared_norm(yg), squared_norm(v)  # before x becomes x − y below
            sums += torch.stack([nx, ny, nu, squared_norm(x.sub_(yg)), squared_norm(y.sub(yg))])
            y_new[:, g] = yg
        self.y = y_new
        xx, yy, uu, rr, dd = (math.sqrt(float(v)) for v in sums.cpu())
        rn = max(xx, yy) or 1.0
        sn = self.rho * uu or 1.0
        return rr / rn, self.rho * dd / sn

    def _step_plain_dense(self) -> tuple[float, float]:
        o, grid = self.options, self.grid
        z = fourier.rfft(self.y - self.u)
        self.x = fourier.irfft(self.solver.solve_data_(z, self.s_hat), grid)  # (AᴴA + ρI) x̂ = ρẑ + Aᴴŝ
        y_prev = self.y
        v = torch.add(self.u, self.x, alpha=o.relax)  # u + αx + (1−α)y: the relaxed x plus the dual
        if o.relax != 1.0:
            v.add_(self.y, alpha=1.0 - o.relax)
        self.y = shrink(v, self.rho / self.l1, self.p)
        self.u = v.sub_(self.y)  # u + xr − y
        rn = max(_norm(self.x), _norm(self.y)) or 1.0
        sn = self.rho * _norm(self.u) or 1.0
        return _norm(self.x - self.y) / rn, self.rho * _norm(y_prev.sub_(self.y)) / sn

    def _step_masked(self) -> tuple[float, float]:
        o, grid, w = self.options, self.grid, self.mask
        assert w is not None
        b = self.spectrum.adjoint(fourier.rfft(self.y0 - self.u0)) + fourier.rfft(self.y - self.u)
        xf = self.solver.solve(b)
        self.x = fourier.irfft(xf, grid)
        dx = fourier.irfft(self.spectrum.forward(xf), grid)
        alpha = o.relax
        dxr, xr = torch.lerp(self.y0, dx, alpha), torch.lerp(self.y, self.x, alpha)
        v0 = dxr + self.u0
        self.y0 = (w * self.s + self.rho * v0) / (w + self.rho)  # ½‖W(y0 − s)‖² + ρ/2‖y0 − v0‖², per sample
        self.y = shrink(xr + self.u, self.rho / self.l1, self.p)
        self.u0.add_(dxr).sub_(self.y0)
        self.u.add_(xr).sub_(self.y)
        # Residuals of the constraint [D; I] x − [y0; y1] = 0: the dual ones go back through Aᵀ = [Dᵀ, I].
        # Residuals of the constraint [D; I] x − [y0; y1] = 0. As SPORCO does for this splitting, the dual one is
        # ‖Aᵀu‖/‖u‖ with Aᵀ = [Dᵀ, I]: the data term sits in the y-blocks, so optimality is Aᵀu = 0.
        rn = max(_norm2(dx, self.x), _norm2(self.y0, self.y)) or 1.0
        un = _norm2(self.u0, self.u) or 1.0
        return _norm2(dx - self.y0, self.x - self.y) / rn, _norm(self._at(self.u0, self.u)) / un

    def _at(self, v0: Tensor, v1: Tensor) -> Tensor:
        """[Dᵀ, I] applied to a (signal, maps) pair."""
        return fourier.irfft(self.spectrum.adjoint(fourier.rfft(v0)), self.grid) + v1

    def _update_rho(self, r: float, s: float) -> None:
        o = self.options
        if not self.auto_rho or self.k == 0 or (self.k + 1) % o.rho_period:
            return
        tau, mu, xi = o.rho_scaling, o.rho_ratio, self.xi
        if o.rho_autoscale and r > 0 and s > 0:
            mult = min(tau, math.sqrt(r / (s * xi)) if r > s * xi else math.sqrt(s * xi / r))
        else:
            mult = tau
        factor = mult if r > xi * mu * s else 1.0 / mult if s > (mu / xi) * r else 1.0
        if factor == 1.0:
            return
        self.rho *= factor
        self.u.div_(factor)  # the scaled dual u = dual/ρ
        if self.mask is not None:
            self.u0.div_(factor)
        else:
            self.solver.set_sigma(self.rho)

    # ------------------------------------------------------------------------------------------ results

    def reconstruction(self, maps: Tensor | None = None) -> Tensor:
        """Σ_k d_k ⊛ maps_k on the grid, (B, C, N1, N2); ``maps`` defaults to the sparse y."""
        m = self.y if maps is None else maps
        return fourier.irfft(self.spectrum.forward(fourier.rfft(m)), self.grid)

    def terms(self, maps: Tensor | None = None) -> dict[str, float]:
        """The objective at ``maps`` (default y): ½‖W(D·maps − s)‖², Σ|maps|^p and their λ-weighted total."""
        m = self.y if maps is None else maps
        r = self.reconstruction(m) - self.s
        if self.mask is not None:
            r = r * self.mask
        rec = 0.5 * float(r.double().square().sum())
        a = m.double().abs()
        sp = float((a > 0).sum()) if self.p == 0 else float(a.pow(self.p).sum())
        return {"reconstruction": rec, "sparsity": sp, "total": rec + self.l1 * sp,
                "nonzero": float((m != 0).sum()) / max(1, m.numel())}

    def solve(self, on_step: OnStep | None = None) -> AdmmResult:
        """Iterate until both normalised residuals are below ``rel_tol``, ``iterations`` are done, or ``on_step``
        returns True; each event carries the objective terms, the non-zero fraction, ρ and the residuals."""
        o, t0 = self.options, time.perf_counter()
        converged = stopped = False
        for i in range(o.iterations):
            r, s = self.step()
            if on_step is not None:
                losses = {**self.terms(), "rho": self.rho, "primal": r, "dual": s}
                stopped = bool(on_step(StepEvent(i + 1, o.iterations, losses, time.perf_counter() - t0)))
            if r < o.rel_tol and s < o.rel_tol:
                converged = True
            if converged or stopped:
                break
        return AdmmResult(self.y, self.terms(), self.k, converged, stopped, self.rho, time.perf_counter() - t0)


def squared_norm(x: Tensor) -> Tensor:
    """‖x‖² as a float64 0-d tensor (accumulating these avoids a host sync per group)."""
    out: Tensor = torch.linalg.vector_norm(x).double().square()
    return out


def _norm(x: Tensor) -> float:
    return float(torch.linalg.vector_norm(x))


def _norm2(a: Tensor, b: Tensor) -> float:
    return math.hypot(_norm(a), _norm(b))
