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


GROUP_BYTES = 1 << 20  # the CPU sweeps of the ADMM solvers take maps in groups of about this much memory


def map_groups(maps: Tensor) -> list[slice]:
    """Slices of the map axis (1) of ``maps`` (B, K, …): a single one on a GPU, and on the CPU groups of about
    :data:`GROUP_BYTES`, so that a group's temporaries stay in cache while it is worked on."""
    k = int(maps.shape[1])
    if maps.device.type != "cpu":
        return [slice(0, k)]
    per_map = maps[:, 0].numel() * maps.element_size()
    size = max(1, min(k, GROUP_BYTES // max(1, per_map)))
    return [slice(i, min(k, i + size)) for i in range(0, k, size)]


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
            self.a_conj = self.a.conj().resolve_conj()  # stored once: a product with a lazy conj copies it
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
            return self.a_conj * r
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
            return rank_one_solve_(b / self.sigma, sp.a, None, self.inv, sp.a_conj)
        t = torch.einsum("uvcd,bduv->bcuv", self.inv, sp.forward(b))
        return (b - sp.adjoint(t)).div_(self.sigma)

    def solve_data_(self, z: Tensor, s: Tensor) -> Tensor:
        """x̂ for the right-hand sides σz + Aᴴŝ (the ADMM x-step: ``z`` the spectrum of y − u, ``s`` (B, C, …)
        the signal's), written over ``z`` and returned."""
        sp = self.spectrum
        if self.a.shape[0] == 1:
            return rank_one_solve_(z, sp.a, s, self.inv, sp.a_conj)
        return z.copy_(self.solve(sp.adjoint(s).add_(z, alpha=self.sigma)))


def rank_one_solve_(z: Tensor, a: Tensor, s: Tensor | None, inv: Tensor, a_conj: Tensor | None = None) -> Tensor:
    """Solves (āaᵀ + σI) x = σz + ā s at every frequency for a single row a, and writes x over ``z``.

    ``z`` (B, K, …); ``a`` (K, …), or (B, K, …) with one row per sample; ``s`` (B, 1, …) or None for zero;
    ``inv`` = 1/(σ + Σ_k |a_k|²), broadcastable to (B, …); ``a_conj`` ā if the caller keeps it. By
    Sherman–Morrison, x = z + ā (s − Σ_k a_k z_k)/(σ + Σ_k |a_k|²): a pass that reads z for the sum, accumulated
    map by map in a buffer of one spectrum (it stays in cache), and a pass that adds ā t to it. This is the
    x-step of ConvBPDN (a the filters' spectra) and the dictionary step of its dictionary learning (a the
    coefficient maps' spectra), both without forming Aᴴŝ.
    """
    def row(k: int) -> Tensor:
        return a[:, k] if a.dim() == z.dim() else a[k]

    t = row(0) * z[:, 0]  # (B, …)
    for k in range(1, z.shape[1]):
        t.addcmul_(row(k), z[:, k])
    t = (t.neg_() if s is None else t.neg_().add_(s[:, 0])).mul_(inv)
    if a_conj is not None:
        return z.addcmul_(a_conj, t[:, None])
    for k in range(z.shape[1]):
        z[:, k].addcmul_(row(k).conj(), t)
    return z


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
