"""Every option of Gatys style transfer, with its default, help text and bounds, in one place.

The command line derives its flags from these declarations and the web app its form fields
(:func:`stylegram.core.options.describe`); every output records them (:meth:`GatysOptions.to_dict`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from stylegram.core.device import resolve_precision
from stylegram.core.errors import UsageError
from stylegram.core.options import Options, option

# The paper names layers after Caffe blobs, and Caffe's ReLUs work in place, so the paper's "conv4_2" response
# is the rectified output, our relu4_2 (as in neural-style). Pass conv* names for pre-activation responses.
PAPER_CONTENT_LAYERS = ("relu4_2",)
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


# β on the relative objective runs from 10^LO at style strength 0 to 10^HI at strength 1 (log-linear, so that
# equal steps of strength are equal ratios of β). The default strength, 0.6, was chosen with
# benchmarks/sweep_defaults.py and bench_defaults.py against neural-style-pt (README, Defaults).
RELATIVE_LOG_BETA = (-0.32, 3.08)  # strength 0.4: β = 11, 0.6: 52, 0.8: 250
START_IMAGES = ("palette", "content", "noise", "style")  # the named starts of ``init``; anything else is a file
RELATIVE_TV_WEIGHT = 0.4  # relative to the painting's own total variation (l1-chroma form; README, Defaults)
PAPER_STYLE_WEIGHT = 1e3  # α/β = 1e-3, the ratio of the paper's Figure 2

PRESETS: dict[str, dict[str, Any]] = {
    "light": {"style_strength": 0.4},
    "balanced": {"style_strength": 0.6},
    "bold": {"style_strength": 0.8},
    # The paper's objective, layers, equal w_l, average pooling and white-noise start, unchanged.
    "paper": {"objective": "paper", "style_weight": PAPER_STYLE_WEIGHT, "tv_weight": 0.0, "init": "noise",
              "pooling": "avg", "tv_norm": "l2", "content_layers": PAPER_CONTENT_LAYERS,
              "style_layers": PAPER_STYLE_LAYERS, "style_layer_weights": None},
}


def style_weight_for(strength: float) -> float:
    """β on the relative objective for a style strength in [0, 1]."""
    lo, hi = RELATIVE_LOG_BETA
    return float(10.0 ** (lo + (hi - lo) * strength))


@dataclass(frozen=True)
class GatysOptions(Options):
    """Every option of Gatys style transfer, with its default."""

    size: int = option(512, "longest side of the output in pixels", min=16, max=16384)
    iterations: int = option(500, "loss evaluations (one forward + backward pass each), whatever the optimiser",
                             min=0)
    objective: Literal["relative", "paper"] = option(
        "relative", "relative: each term divided by its target's energy (content features, style Gram matrices, the "
        "photo's total variation), so that one --style-strength gives the same balance at every size and for "
        "every painting; paper: the paper's L = α L_content + β L_style exactly")
    style_strength: float = option(
        0.6, "how much style, 0 (the photo) to 1 (the painting): sets β on the relative objective; presets: light "
        "0.4, balanced 0.6, bold 0.8", min=0, max=1)
    content_weight: float = option(1.0, "α: weight of the content loss", min=0)
    style_weight: float | None = option(
        None, "β: weight of the style loss (default: from --style-strength, or 1000 with --objective paper); "
        "α/β sets the trade-off (lower = more style)", min=0)
    tv_weight: float | None = option(
        None, "weight of the total-variation smoothness term (default: 0.4 on the relative objective, where it is "
        "relative to the painting's own, see --tv-reference; 0 with --objective paper)", min=0)
    tv_reference: Literal["content", "style"] = option(
        "style", "what the total-variation weight is relative to (relative objective): style, the painting's own "
        "(per pixel, at the size the style image is used), so that a textured painting is smoothed less than a "
        "smooth one; content, the photo's")
    tv_norm: Literal["l1", "l2", "l1-chroma"] = option(
        "l1-chroma", "form of the total variation: l1 (absolute differences, smoothed at 0: removes faint ripple, "
        "keeps edges), l2 (squared differences), or l1-chroma (l1 plus the square of colour differences: also no "
        "colour specks)")
    content_layers: tuple[str, ...] = option(PAPER_CONTENT_LAYERS, "VGG layers for the content loss")
    style_layers: tuple[str, ...] = option(PAPER_STYLE_LAYERS, "VGG layers for the style loss")
    style_layer_weights: tuple[float, ...] | None = option(
        None, "weight w_l of each style layer, normalised to sum 1 (default: equal with --objective paper, else "
        "proportional to 1/channels², neural-style's 64:16:4:1:1)", min=0)
    style_blend_weights: tuple[float, ...] | None = option(None, "weight of each style image (default: equal)",
                                                           min=0)
    style_scale: float = option(1.0, "size of the style image(s) relative to the output", above=0, max=64)
    content_masks: tuple[str, ...] | None = option(
        None, "one mask image per style: where on the output each style goes (white = on; Gatys et al. 2017)",
        web=False)
    style_masks: tuple[str, ...] | None = option(
        None, "one mask image per style: which part of each style image to take the style from", web=False)
    mask_colors: tuple[str, ...] | None = option(
        None, "colour-indexed masks: one colour per style (ff0000,#00f,blue …); each mask image's pixels of "
        "style k's colour mark its region (one content mask image may then serve every style)", web=False)
    original_colors: bool = option(False, "keep the content's colours (luminance-only transfer)")
    color_transfer: Literal["none", "histogram"] = option(
        "none", "histogram: recolour the style image(s) to the content's colour mean and covariance first")
    init: str = option("palette", "start image: palette (the content in the style's colours), content, noise (the "
                            "paper's white noise), style, or an image file")
    optimizer: Literal["lbfgs", "adam"] = option("lbfgs", "optimiser: lbfgs or adam")
    learning_rate: float | None = option(None, "step size (default: 1 for L-BFGS, 0.02 for Adam)", above=0)
    pooling: Literal["avg", "max"] = option(
        "max", "pooling in VGG: max (as the network was trained: strokes rather than ripple) or avg (the paper's "
        "choice)")
    precision: Literal["auto", "float32", "bfloat16"] = option(
        "auto", "arithmetic of the VGG convolutions: float32, bfloat16, or auto (bfloat16 where the hardware "
        "has native bfloat16, else float32)")
    multiscale: bool = option(True, "coarse-to-fine: optimise first at coarse-size or less, then double up to size")
    coarse_size: int = option(512, "longest side of the coarsest stage: the output is halved until it fits",
                              min=16, max=16384)
    stage_iterations: tuple[int, ...] | None = option(
        None, "evaluations per stage, coarsest first (default: iterations at the coarsest, half as many at each "
        "finer stage)", min=0)
    tile_size: int = option(
        0, "optimise in tiles whose cores are at most this many pixels a side, with the whole image's exact "
        "gradient (0 = automatic: tile only a stage that would not fit the memory budget)", min=0)
    lbfgs_history: int = option(
        0, "L-BFGS curvature pairs kept (0 = automatic: 100, fewer above ~1400 px so that they take at most 2 GiB)",
        min=0)
    seed: int = option(0, "random seed for the noise start; same seed, same machine, same image")
    model: str = option("vgg16-caffe", "weights id (see `stylegram weights list`)")
    weights: str | None = option(None, "a weights file to use instead of the model's default location", web=False)

    def problems(self) -> Iterator[str]:
        if not self.content_layers and not self.style_layers:
            yield "give at least one content or style layer"
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            yield (
                f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers"
            )
        if self.tile_size != 0 and self.tile_size < 16:
            yield "tile-size must be 0 (automatic) or >= 16"

    @property
    def beta(self) -> float:
        """β as the run uses it: ``style_weight``, or the one ``style_strength`` gives on the relative objective."""
        if self.style_weight is not None:
            return self.style_weight
        return style_weight_for(self.style_strength) if self.objective == "relative" else PAPER_STYLE_WEIGHT

    @property
    def tv(self) -> float:
        """λ_tv as the run uses it."""
        if self.tv_weight is not None:
            return self.tv_weight
        return RELATIVE_TV_WEIGHT if self.objective == "relative" else 0.0

    @classmethod
    def from_preset(cls, name: str, **changes: Any) -> GatysOptions:
        """The options of a preset (:data:`PRESETS`), with ``changes`` on top."""
        if name not in PRESETS:
            raise UsageError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **changes})

    def resolved(self, device: torch.device) -> GatysOptions:
        """These options with ``precision="auto"`` replaced by what ``device`` runs best."""
        if self.precision != "auto":
            return self
        return self.replace(precision=resolve_precision(self.precision, device))
