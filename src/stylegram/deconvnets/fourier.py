"""Convolutions in the Fourier domain, shared by both solvers.

On an N1×N2 grid with periodic boundaries a sum of convolutions is diagonal in the Fourier domain: at each
frequency the operator is a small C×K matrix A (C input channels, K maps; only the connected (k, c) pairs are
non-zero). Spectra are real FFTs: the last axis keeps N2//2 + 1 frequencies.

- :class:`Spectrum`: A and Aᴴ applied to spectra of maps and signals.
- :class:`FrequencySolver`: the ADMM x-step, (AᴴA + σI) x̂ = b̂ at every frequency, by the Woodbury identity
  x̂ = (b̂ − Aᴴ (σI + AAᴴ)⁻¹ A b̂) / σ (Wohlberg 2016; for C = 1 the Sherman–Morrison formula, a division).
- :class:`ValidConvolution`: the paper's operator F (full-size maps, valid reconstruction, nothing wraps around)
  as the circular convolution on the maps' grid followed by a crop. The paper's z-step applies FᵀF many times;
  done here on spectra it costs 2C FFTs per application instead of K·C direct convolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rfft(x: Tensor) -> Tensor:
    out: Tensor = torch.fft.rfft2(x)
    return out


def irfft(x: Tensor, grid: tuple[int, int]) -> Tensor:
    out: Tensor = torch.fft.irfft2(x, s=grid)
    return out


def _padded_spectrum(kernels: Tensor, grid: tuple[int, int]) -> Tensor:
    """Spectra of (…, s1, s2) kernels zero-padded to ``grid`` at the top-left corner (SPORCO's convention: the
    reconstruction is Σ_k d_k ⊛ x_k, no shift)."""
    s1, s2 = kernels.shape[-2:]
    return rfft(F.pad(kernels, (0, grid[1] - s2, 0, grid[0] - s1)))


class Spectrum:
    """A (C×K per frequency) for (K, C, s1, s2) kernels masked by a (K, C) connectivity on an N1×N2 grid."""

    def __init__(self, filters: Tensor, connectivity: Tensor | None, grid: tuple[int, int]) -> None:
        self.grid = grid
        self.maps, self.channels = int(filters.shape[0]), int(filters.shape[1])
        g = torch.ones(filters.shape[:2], dtype=torch.bool, device=filters.device) if connectivity is None \
            else connectivity.to(device=filters.device, dtype=torch.bool)
        if self.channels == 1:
            self.a = _padded_spectrum(filters[:, 0] * g[:, 0, None, None].to(filters.dtype), grid)  # (K, …)
            return
        # Only connected pairs are stored and applied (the paper's layer 2: 81 of 45×9), as edges k_e → c_e.
        self.k_e, self.c_e = g.nonzero(as_tuple=True)
        self.a = _padded_spectrum(filters[self.k_e, self.c_e], grid)  # (E, …)

    def forward(self, v: Tensor) -> Tensor:
        """A v̂: (B, K, …) map spectra to (B, C, …) signal spectra."""
        if self.channels == 1:
            return (self.a * v).sum(1, keepdim=True)
        out = v.new_zeros((v.shape[0], self.channels, *v.shape[2:]))
        return out.index_add_(1, self.c_e, self.a * v[:, self.k_e])

    def adjoint(self, r: Tensor) -> Tensor:
        """Aᴴ r̂: (B, C, …) signal spectra to (B, K, …) map spectra."""
        if self.channels == 1:
            return self.a.conj() * r
        out = r.new_zeros((r.shape[0], self.maps, *r.shape[2:]))
        return out.index_add_(1, self.k_e, self.a.conj() * r[:, self.c_e])

    def dense(self) -> Tensor:
        """A as a (C, K, N1, N2//2+1) tensor."""
        if self.channels == 1:
            return self.a[None]
        a = self.a.new_zeros((self.channels, self.maps, *self.a.shape[1:]))
        a[self.c_e, self.k_e] = self.a
        return a


class FrequencySolver:
    """Solves (AᴴA + σI) x̂ = b̂ at every frequency, with what does not change between solves cached.

    For one channel the cache is 1/(σ + Σ_k |a_k|²) per frequency; for C channels the inverse of the C×C matrix
    σI + AAᴴ per frequency.
    """

    def __init__(self, spectrum: Spectrum, sigma: float) -> None:
        self.spectrum = spectrum
        self.a = spectrum.dense()  # (C, K, …)
        self.set_sigma(sigma)

    def set_sigma(self, sigma: float) -> None:
        self.sigma = float(sigma)
        a = self.a
        if a.shape[0] == 1:
            self.inv = 1.0 / (self.sigma + a[0].abs().square().sum(0))  # (N1, N2//2+1), real
            return
        aa = torch.einsum("ckuv,dkuv->uvcd", a, a.conj())  # (N1, N2', C, C): A Aᴴ per frequency
        eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
        self.inv = torch.linalg.inv(aa + self.sigma * eye)

    def solve(self, b: Tensor) -> Tensor:
        """x̂ for right-hand sides ``b`` (B, K, N1, N2//2+1); ``b`` is not modified."""
        sp = self.spectrum
        if self.a.shape[0] == 1:
            t = sp.forward(b).mul_(self.inv)  # (B, 1, …)
        else:
            t = torch.einsum("uvcd,bduv->bcuv", self.inv, sp.forward(b))
        return (b - sp.adjoint(t)).div_(self.sigma)


class ValidConvolution:
    """The paper's F for maps on an (H+s−1)×(W+s−1) grid and a (B, C, H, W) signal: the circular convolution on
    the maps' grid is exact on its last H×W samples (no kernel tap reaches round the border there), so F is that
    convolution followed by a crop, and Fᵀ a zero-pad followed by the correlation."""

    def __init__(self, filters: Tensor, connectivity: Tensor, signal_hw: tuple[int, int]) -> None:
        s = int(filters.shape[-1])
        self.offset = s - 1
        self.grid = (signal_hw[0] + s - 1, signal_hw[1] + s - 1)
        self.spectrum = Spectrum(filters, connectivity, self.grid)
        n2 = self.grid[1]
        # Parseval on a real FFT: bins other than 0 (and N2/2 for even N2) stand for a conjugate pair.
        w = torch.full((n2 // 2 + 1,), 2.0, dtype=filters.dtype, device=filters.device)
        w[0] = 1.0
        if n2 % 2 == 0:
            w[-1] = 1.0
        self.parseval = w / (self.grid[0] * n2)

    def forward(self, v: Tensor) -> Tensor:
        """F v from a map spectrum (B, K, …): the (B, C, H, W) reconstruction."""
        o = self.offset
        return irfft(self.spectrum.forward(v), self.grid)[..., o:, o:]

    def adjoint(self, r: Tensor) -> Tensor:
        """Fᵀ r as a map spectrum, from a (B, C, H, W) signal-space tensor."""
        o = self.offset
        return self.spectrum.adjoint(rfft(F.pad(r, (o, 0, o, 0))))

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-sample real inner products of the signals whose spectra are ``a`` and ``b``: (B, 1, 1, 1)."""
        prod = (a.conj() * b).real * self.parseval
        return prod.flatten(1).sum(1).view(-1, 1, 1, 1)
