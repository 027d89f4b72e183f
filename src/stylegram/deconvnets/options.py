"""Options of the deconvolutional-network room: one layer's shape, inference, learning, and the ADMM solver.

The architecture defaults are the paper's (Zeiler et al. 2010: 7×7 filters, 9 layer-1 maps, 45 layer-2 maps each
joined to one layer-1 map or a pair of them, p = 1). Its continuation (β from 1, ×10 per step, to 1e5, one z/x
alternation per β) leaves about 70 % of the map entries non-zero on contrast-normalised photos and an objective
above that of all-zero maps; the default here is slower (×2 per step to 1e3, four alternations per β), which
comes within ~6 % of the exact ℓ1 optimum (ADMM) at ~12 % non-zeros. The help of each such field says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from stylegram.core.options import Options, option


@dataclass(frozen=True)
class LayerSpec(Options):
    """One layer: how many maps, the filter size, the weight λ of its reconstruction term, its sparsity norm p."""

    maps: int = option(9, "feature maps of the layer", min=1, max=4096)
    filter: int = option(7, "filter side in pixels (odd or even)", min=1, max=63)
    lam: float = option(1.0, "λ, the weight of the reconstruction term against Σ|z|^p", above=0)
    p: float = option(1.0, "the sparsity norm |z|^p (1: ℓ1 and soft thresholding; 0 < p < 1: sparser)",
                      min=0, max=1)
    connectivity: Literal["paper", "full"] = option(
        "paper", "which input channels each map sees: paper (each map one input channel, then each pair, in "
        "order, as the paper's layer 2; for one input channel every map sees it) or full (all of them)")


PAPER_LAYERS: tuple[LayerSpec, ...] = (LayerSpec(maps=9, filter=7, lam=1.0), LayerSpec(maps=45, filter=7, lam=10.0))
"""The paper's two-layer model: 9 maps on the image, then 45 maps on the 9 (9 single + 36 pair connections).

λ is this project's choice (the paper's per-layer values could not be checked): 1 on the contrast-normalised
image, 10 on layer 1's maps, whose entries are an order of magnitude smaller than the image's (λ trades squared
error against absolute values, so it scales inversely with the input)."""


@dataclass(frozen=True)
class InferenceOptions(Options):
    """The paper's inference: alternate a z-step (CG) and an x-step (shrinkage) while β rises."""

    beta0: float = option(1.0, "first β of the continuation (the weight tying the maps z to their sparse copy x)",
                          above=0)
    beta_inc: float = option(2.0, "factor by which β grows after each round of alternations (the paper: 10)",
                             above=1)
    beta_max: float = option(1e3, "largest β; the continuation stops after it (the paper: 1e5)", above=0)
    alternations: int = option(4, "z/x alternations at each β (the paper: one)", min=1, max=10000)
    cg_iterations: int = option(3, "conjugate-gradient iterations per z-step", min=1, max=10000)

    def problems(self) -> Iterator[str]:
        if self.beta_max < self.beta0:
            yield f"beta-max ({self.beta_max:g}) must be at least beta0 ({self.beta0:g})"

    def betas(self) -> list[float]:
        """The continuation: β0, β0·inc, … up to and including the last value not above β_max."""
        out, beta = [], self.beta0
        while beta <= self.beta_max * (1 + 1e-9):
            out.append(beta)
            beta *= self.beta_inc
        return out


@dataclass(frozen=True)
class LearnOptions(Options):
    """Filter learning, layer by layer: epochs of inference then a filter update, on preprocessed images."""

    iterations: int = option(10, "epochs per layer: each infers every image's maps, then updates the filters",
                             min=1, max=100000)
    size: int = option(150, "training images are cropped to their central square and scaled to this side",
                       min=8, max=4096)
    contrast: Literal["local", "none"] = option(
        "local", "preprocessing of the greyscale input: local (subtract the local mean, divide by the local "
        "standard deviation where it is high) or none")
    filter_iterations: int = option(10, "projected-gradient steps of each filter update (the paper: CG, then "
                                    "rescaling; see deconvnets.filters)", min=1, max=10000)
    seed: int = option(0, "seed of the initial filters", min=0)


@dataclass(frozen=True)
class AdmmOptions(Options):
    """ADMM for convolutional basis pursuit denoising with per-frequency x-steps (Wohlberg 2016); the defaults
    are SPORCO's ConvBPDN ones (ρ = 50λ + 1, relaxation 1.8, residual-balancing ρ every iteration)."""

    iterations: int = option(200, "ADMM iterations at most", min=1, max=1000000)
    rel_tol: float = option(1e-3, "stop when both normalised residuals fall below this (0: run every iteration)",
                            min=0)
    rho: float | None = option(None, "penalty ρ (default: 50λ + 1, as SPORCO)", above=0)
    relax: float = option(1.8, "over-relaxation α of the x-step (1: none)", above=0, max=2)
    auto_rho: bool | None = option(None, "adapt ρ to balance the primal and dual residuals (default: on for the "
                                   "circular problem, off for the masked one, as SPORCO's ConvBPDN and "
                                   "ConvBPDNMaskDcpl)")
    rho_period: int = option(1, "iterations between ρ updates", min=1)
    rho_ratio: float = option(1.2, "residual ratio μ that triggers a ρ update", above=1)
    rho_scaling: float = option(1000.0, "largest factor of one ρ update", above=1)
    rho_autoscale: bool = option(True, "scale ρ by √(r/s) (bounded by rho-scaling) instead of by rho-scaling")
    rho_target: float | None = option(None, "target residual ratio ξ (default: 1 + 18.3^(log10 λ + 1), as "
                                      "SPORCO)", above=0)


@dataclass(frozen=True)
class DictLearnOptions(Options):
    """Circular-boundary dictionary learning as SPORCO's ``ConvBPDNDictLearn`` with the consensus dictionary update
    (``dmethod='cns'``): one ADMM iteration of sparse coding, then one of the dictionary update, per iteration.
    The defaults are those of SPORCO's example ``cbpdndl_cns_gry``."""

    iterations: int = option(200, "outer iterations (one coding and one dictionary ADMM step each)", min=1)
    x_rho: float | None = option(None, "ρ of the coding steps (default: 50λ + 0.5)", above=0)
    d_rho: float = option(10.0, "ρ of the dictionary steps", above=0)
    zero_mean: bool = option(True, "keep every filter zero-mean")
    relax: float = option(1.8, "over-relaxation α of both x-steps", above=0, max=2)
    rho_period: int = option(10, "iterations between ρ updates of either step", min=1)
    rho_ratio: float = option(10.0, "residual ratio μ that triggers a ρ update", above=1)
    rho_scaling: float = option(2.0, "factor of one ρ update", above=1)
