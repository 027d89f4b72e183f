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
from stylegram.deconvnets.admm import ConvBPDN
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
        o, rho, b = self.options, self.rho, z.shape[0]
        zf = fourier.rfft(z)  # (B, K, …): per image, A is the row of its coefficient spectra
        rhs = zf.conj() * self.sf + rho * fourier.rfft(self.y - self.u)
        t = (zf * rhs).sum(1, keepdim=True) / (rho + zf.abs().square().sum(1, keepdim=True))
        x = fourier.irfft((rhs - zf.conj() * t) / rho, self.grid)  # each image's own dictionary copy
        ax = x if o.relax == 1.0 else torch.lerp(self.y.expand_as(x), x, o.relax)
        y_prev = self.y
        self.y = torch.zeros_like(self.y)
        self.y[:, : self.size[0], : self.size[1]] = project((ax + self.u).mean(0), self.size, o.zero_mean)
        self.u.add_(ax).sub_(self.y)
        self._update_rho(x, y_prev, b)

    def _update_rho(self, x: Tensor, y_prev: Tensor, b: int) -> None:
        o = self.options
        if self.k == 0 or (self.k + 1) % o.rho_period:
            return
        rn = max(float(x.norm()), math.sqrt(b) * float(self.y.norm())) or 1.0
        sn = self.rho * float(self.u.norm()) or 1.0
        r = float((x - self.y).norm()) / rn
        s = math.sqrt(b) * self.rho * float((y_prev - self.y).norm()) / sn
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
