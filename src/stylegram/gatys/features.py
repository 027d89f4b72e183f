"""VGG responses in the run's precision, the record of what an image is pulled towards, and the up-front checks.

The bottom of the Gatys room: :mod:`.tiled`, :mod:`.targets` and :mod:`.objective` build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from stylegram.core.device import native_bfloat16
from stylegram.core.errors import UsageError
from stylegram.gatys.options import GatysOptions
from stylegram.losses import guided
from stylegram.nets.vgg import VGG


@dataclass(frozen=True)
class Targets:
    """What the image is pulled towards, and how hard: content features, (blended) style Gram matrices, and the
    effective weight of every term (α, β, λ_tv and, on the relative objective, each target's normaliser)."""

    content: dict[str, Tensor]
    style: dict[str, Tensor]  # per layer: (1, C, C) blended, or (K, C, C) per region with masks
    style_layer_weights: dict[str, float]  # per style layer: β · w_l (· 4N²/ΣÂ² on the relative objective)
    guides: dict[str, Tensor] | None = None  # per style layer: (K, 1, h, w) region weights (guided.py)
    content_weights: dict[str, float] | None = None  # per content layer: α (· 2/ΣP² relative); None: α = 1
    tv_weight: float = 0.0  # λ_tv (/ TV(content) relative)
    tv_norm: str = "l2"  # the form of the total variation (losses.total_variation)

    def content_weight(self, layer: str) -> float:
        return 1.0 if self.content_weights is None else self.content_weights[layer]


def check(vgg: VGG, options: GatysOptions, n_styles: int) -> None:
    """Raise UsageError, before any work, for layers the network lacks or weights that do not match the styles."""
    for layer in (*options.content_layers, *options.style_layers):
        vgg.spec(layer)
    if options.style_layers and n_styles == 0:
        raise UsageError("style layers were given but no style image")
    masks, style_masks, colors = options.content_masks, options.style_masks, options.mask_colors
    if colors is not None:
        guided.parse_colors(colors)  # a colour that is not one fails here, before any work
    if colors is not None and (masks is None or len(colors) != n_styles):
        raise UsageError(f"{len(colors)} mask colours for {n_styles} style images: give one per style, "
                         "with --content-masks")
    if masks is not None and len(masks) != n_styles and not (colors is not None and len(masks) == 1):
        raise UsageError(f"{len(masks)} content masks for {n_styles} style images: give one per style "
                         "(or one colour-indexed mask with --mask-colors)")
    if style_masks is not None and (masks is None or len(style_masks) != n_styles):
        raise UsageError("style masks need content masks, one of each per style image")
    if options.style_blend_weights is not None and len(options.style_blend_weights) != n_styles:
        raise UsageError(f"{len(options.style_blend_weights)} style blend weights for {n_styles} style images")


def features(vgg: VGG, x: Tensor, layers: Sequence[str], precision: str) -> dict[str, Tensor]:
    """VGG features in float32; with ``precision="bfloat16"`` the convolutions run in bfloat16 (autocast).

    Departure from the paper, opt-in: bfloat16 convolutions roughly halve the time per evaluation where the
    hardware has bfloat16 units, at ~3 significant digits per activation. Gram matrices and losses stay float32.
    """
    if not layers:
        return {}
    low = precision == "bfloat16" or (precision == "auto" and native_bfloat16(x.device))
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=low):
        out = vgg(x, layers)
    return {k: v.float() for k, v in out.items()}
