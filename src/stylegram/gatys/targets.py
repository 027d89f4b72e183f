"""The targets of a Gatys run: the content image's features P^l and the style images' Gram matrices A^l."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stylegram.gatys import tiled
from stylegram.gatys.features import Targets, check, features
from stylegram.gatys.options import GatysOptions
from stylegram.losses import functional as losses
from stylegram.losses import guided
from stylegram.nets.vgg import VGG


def compute_targets(
    vgg: VGG, content: Tensor, styles: Sequence[Tensor], options: GatysOptions, masks: guided.Masks | None = None,
    tiling: tiled.Tiling | None = None,
) -> Targets:
    """Content features P^l and Gram targets A^l (blended across style images, or one per masked region).

    With ``tiling`` the images are run through VGG tile by tile (:mod:`tiled`): the same targets, less memory.
    """
    check(vgg, options, len(styles))
    blend = options.style_blend_weights or tuple(1.0 for _ in styles)
    layers = options.style_layers
    layer_w = options.style_layer_weights or tuple(1.0 / len(layers) for _ in layers)
    with torch.no_grad():
        if tiling is not None:
            content_feats = tiled.feature_maps(vgg, content, options.content_layers, tiling, options.precision)
            style_masks = masks.style if masks is not None else (None,) * len(styles)
            per_style = [tiled.gram_matrices(vgg, s, layers, tiling, options.precision,
                                             guides=None if m is None else _layer_guides(vgg, layers, m, s))
                         for s, m in zip(styles, style_masks, strict=True)]
            style_targets = {layer: _combine([g[layer] for g in per_style], blend, masks) for layer in layers}
        else:
            content_feats = features(vgg, content, options.content_layers, options.precision)
            maps = [features(vgg, s, layers, options.precision) for s in styles]
            style_targets = {
                layer: guided.region_targets([f[layer] for f in maps], masks.style) if masks is not None
                else losses.blend_grams([losses.gram_matrix(f[layer]) for f in maps], blend)
                for layer in layers
            }
    region_guides = None if masks is None else _layer_guides(vgg, layers, masks.content, content)
    return Targets(
        content={k: v.detach() for k, v in content_feats.items()},
        style=style_targets,
        style_layer_weights=dict(zip(options.style_layers, layer_w, strict=True)),
        guides=region_guides,
    )


def _layer_guides(vgg: VGG, layers: Sequence[str], mask: Tensor, image: Tensor) -> dict[str, Tensor]:
    """Region weights of ``mask`` at each layer's feature size for ``image`` (:func:`guided.guides`)."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    return {k: guided.guides(mask, vgg.feature_shape(k, h, w)) for k in layers}


def _combine(grams: Sequence[Tensor], blend: Sequence[float], masks: guided.Masks | None) -> Tensor:
    """One target per layer: the blend of the styles' Gram matrices, or (with masks) one per region."""
    return torch.cat(list(grams)) if masks is not None else losses.blend_grams(grams, blend)
