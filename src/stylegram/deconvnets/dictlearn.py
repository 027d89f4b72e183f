"""Circular-boundary convolutional dictionary learning, as SPORCO's ``ConvBPDNDictLearn`` (``dmethod='cns'``).

    min_{d, x}  ½ Σ_i ‖Σ_k d_k ⊛ x_ik − s_i‖² + λ Σ_ik ‖x_ik‖₁   such that each d_k is zero-mean, supported on
                s×s, and of unit norm

by interleaving single iterations of two ADMM solvers (Garcia-Cardona & Wohlberg 2018): the coding step is
:class:`~stylegram.deconvnets.admm.ConvBPDN`; the dictionary step is the consensus form of the constrained MOD
(Šorel & Šroubek 2016): each image keeps its own copy of the dictionary, solved per frequency by Sherman–Morrison,
and the copies are averaged and projected onto the constraint set. This is not the paper's method (that is
:mod:`stylegram.deconvnets.learn`); it is here to measure against SPORCO on SPORCO's own problem.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stylegram.deconvnets import fourier
from stylegram.deconvnets.admm import ConvBPDN, squared_norm
from stylegram.deconvnets.options import AdmmOptions, DictLearnOptions


def project(d: Tensor, size: tuple[int, int], zero_mean: bool) -> Tensor:
    """Filters on the grid (K, N1, N2) projected onto the constraint set: cropped to the ``size`` support at the
    top-left, zero-mean there (optionally), unit norm; returned cropped, (K, s1, s2)."""
    f = d[..., : size[0], : size[1]]
    if zero_mean:
        f = f - f.mean(dim=(-2, -1), keepdim=True)
    norms = f.flatten(1).norm(dim=1).view(-1, 1, 1)
    return f / torch.where(norms > 0, norms, torch.ones_like(norms))


class ConvBPDNDictLearn:
    """``d0`` (K, s1, s2) initial filters, ``signals`` (B, N1, N2); :meth:`step` runs one outer iteration."""

    def __init__(self, d0: Tensor, signals: Tensor, l1_weight: float, options: DictLearnOptions | None = None) -> None:
        o = options or DictLearnOptions()
        self.options, self.l1 = o, float(l1_weight)
        s = signals[:, None] if signals.dim() == 3 else signals  # (B, 1, N1, N2)
        self.s, self.grid = s, (int(s.shape[-2]), int(s.shape[-1]))
        self.size = (int(d0.shape[-2]), int(d0.shape[-1]))
        d = project(d0.to(s), self.size, o.zero_mean)
        x_opts = AdmmOptions(rho=o.x_rho if o.x_rho is not None else 50.0 * self.l1 + 0.5, relax=o.relax,
                             auto_rho=True, rho_period=o.rho_period, rho_ratio=o.rho_ratio,
                             rho_scaling=o.rho_scaling, rho_autoscale=False, rho_target=1.0)
        self.coding = ConvBPDN(d[:, None], s, self.l1, x_opts)
        b, k = s.shape[0], d.shape[0]
        self.rho = float(o.d_rho)
        self.y = torch.zeros(k, *self.grid, dtype=s.dtype, device=s.device)
        self.y[:, : self.size[0], : self.size[1]] = d
        self.u = (self.y / self.rho).expand(b, -1, -1, -1).clone()  # SPORCO's initial dual for a given Y0
        self.sf = fourier.rfft(s)  # (B, 1, …)
        self.k = 0

    @property
    def dictionary(self) -> Tensor:
        """The current (feasible) filters, (K, s1, s2)."""
        return self.y[:, : self.size[0], : self.size[1]]

    @property
    def coefficients(self) -> Tensor:
        """The current sparse coefficient maps, (B, K, N1, N2)."""
        return self.coding.y

    def step(self) -> None:
        self.coding.step()
        self._dictionary_step(self.coding.y)
        self.coding.set_filters(self.dictionary[:, None])
        self.k += 1

    def _dictionary_step(self, z: Tensor) -> None:
        # Per image and frequency the x-step is the rank-one system (āaᵀ + ρI) x̂ = ā ŝ + ρŵ, with a the image's
        # coefficient spectra and ŵ the spectrum of y − u: by Sherman–Morrison x̂ = ŵ + ā (ŝ − Σ_k a_k ŵ_k) /
        # (ρ + Σ_k |a_k|²). Everything else is per filter, so (as in the coding step) the maps go through in
        # groups that stay in cache: the spectra and the two sums over the maps first, then per group the
        # solution, the average of the images' copies projected onto the constraints, and the dual update.
        o, rho, b = self.options, self.rho, z.shape[0]
        groups = fourier.map_groups(self.u)
        zfs = [fourier.rfft(z[:, g]) for g in groups]  # (B, group, …), contiguous per group: FFTs want it
        ws = [fourier.rfft(self.y[g] - self.u[:, g]) for g in groups]
        q = torch.zeros_like(zfs[0][:, 0])  # Σ_k a_k ŵ_k
        n = torch.zeros(q.shape, dtype=z.dtype, device=z.device)  # Σ_k |a_k|²
        for zf, w in zip(zfs, ws, strict=True):
            for j in range(zf.shape[1]):
                q.addcmul_(zf[:, j], w[:, j])
                n.add_(zf[:, j].abs().square_())
        t = q.neg_().add_(self.sf[:, 0]).div_(n.add_(rho))
        check = self.k > 0 and (self.k + 1) % o.rho_period == 0
        sums = torch.zeros(5, dtype=torch.float64, device=z.device)  # ‖x‖², ‖y‖², ‖u‖², ‖x − y‖², ‖Δy‖²
        y_new = torch.zeros_like(self.y)
        for g, zf, w in zip(groups, zfs, ws, strict=True):
            x = fourier.irfft(w.addcmul_(zf.conj(), t[:, None]), self.grid)  # each image's copy of these filters
            v = torch.add(self.u[:, g], x, alpha=o.relax)  # u + αx + (1−α)y: relaxed copies plus the dual
            if o.relax != 1.0:
                v.add_(self.y[g], alpha=1.0 - o.relax)
            y_new[g, : self.size[0], : self.size[1]] = project(v.mean(0), self.size, o.zero_mean)
            yg = y_new[g]
            self.u[:, g] = v.sub_(yg)
            if check:
                # ‖y‖ counts once per image beside the images' own copies x; x becomes x − y last.
                nx, ny, nu = squared_norm(x), b * squared_norm(yg), squared_norm(v)
                sums += torch.stack([nx, ny, nu, squared_norm(x.sub_(yg)), squared_norm(self.y[g] - yg)])
        self.y = y_new
        if check:
            xx, yy, uu, rr, dd = (math.sqrt(float(v)) for v in sums.cpu())
            self._update_rho(xx, yy, uu, rr, dd, b)

    def _update_rho(self, xx: float, yy: float, uu: float, rr: float, dd: float, b: int) -> None:
        """Residual balancing from the norms of x, y (counted once per image), u, x − y and the change of y."""
        o = self.options
        rn = max(xx, yy) or 1.0
        sn = self.rho * uu or 1.0
        r = rr / rn
        s = math.sqrt(b) * self.rho * dd / sn
        factor = o.rho_scaling if r > o.rho_ratio * s else 1.0 / o.rho_scaling if s > o.rho_ratio * r else 1.0
        if factor != 1.0:
            self.rho *= factor
            self.u.div_(factor)

    def objective(self) -> dict[str, float]:
        """½ Σ‖Σ d ⊛ x − s‖² + λ‖x‖₁ at the current (feasible) dictionary and sparse coefficients, in float64."""
        return objective(self.dictionary, self.coefficients, self.s, self.l1)

    def solve(self) -> Tensor:
        for _ in range(self.options.iterations):
            self.step()
        return self.dictionary


def objective(d: Tensor, x: Tensor, s: Tensor, l1_weight: float) -> dict[str, float]:
    """The circular CBPDN objective of filters ``d`` (K, s1, s2), maps ``x`` (B, K, N1, N2), signals (B, 1, N1, N2)
    or (B, N1, N2), computed in float64 (the benchmark scores both libraries' results with it)."""
    s64 = (s[:, None] if s.dim() == 3 else s).double()
    grid = (int(s64.shape[-2]), int(s64.shape[-1]))
    spec = fourier.Spectrum(d.double()[:, None], None, grid)
    rec = fourier.irfft(spec.forward(fourier.rfft(x.double())), grid)
    fid = 0.5 * float((rec - s64).square().sum())
    l1 = float(x.double().abs().sum())
    return {"reconstruction": fid, "sparsity": l1, "total": fid + l1_weight * l1}
