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
    layer_w = layer_weights(vgg, options)
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
    content_targets = {k: v.detach() for k, v in content_feats.items()}
    content_w, style_w, tv_w = term_weights(options, content, content_targets, style_targets, layer_w, styles)
    return Targets(content=content_targets, style=style_targets, style_layer_weights=style_w, guides=region_guides,
                   content_weights=content_w, tv_weight=tv_w, tv_norm=options.tv_norm)


def term_weights(options: GatysOptions, content: Tensor, content_targets: dict[str, Tensor],
                 style_targets: dict[str, Tensor], layer_w: Sequence[float], styles: Sequence[Tensor],
                 ) -> tuple[dict[str, float], dict[str, float], float]:
    """The effective weight of every term: per content layer, per style layer, and of total variation.

    On the paper's objective they are α, β·w_l and λ_tv. On the relative objective each term is divided by its
    target's energy: the content term becomes α ‖F − P‖²/‖P‖² (per content layer), the style term
    β Σ_l w_l E_l / Σ_l w_l E_l⁰ with E_l⁰ = ‖Â‖²/(4N²) the style's own energy at layer l (the loss of an image
    with no response), and the smoothness term λ TV(x)/TV(content), or with ``tv_reference="style"``
    λ TV(x)/TV(style), the style images' total variation per neighbour pair times the output's pairs. Neither
    ratio grows with the image's size (both sides scale alike) nor depends on how strong a painting's or a
    photo's responses are, so one β (one style strength) gives the same balance at every size and for every
    pair; the layer weights w_l keep their meaning inside the style term.

    Departure from the paper: its α/β is absolute. With raw Caffe VGG16 the same β = 90 is, in these relative
    units, 6.4 for Tübingen + The Starry Night but 1.0 for the Golden Gate + The Scream at 512 px, and four
    times that at 256 px (benchmarks/README.md).
    """
    alpha, beta, tv = options.content_weight, options.beta, options.tv
    if options.objective == "paper":
        return ({k: alpha for k in content_targets},
                {k: beta * w for k, w in zip(options.style_layers, layer_w, strict=True)}, tv)
    tiny = 1e-12
    # content_loss is ½‖F − P‖²: the factor 2 undoes the ½.
    content_w = {k: alpha * 2.0 / max(float(p.pow(2).sum()), tiny) for k, p in content_targets.items()}
    energy = sum(w * float(losses.style_layer_loss(torch.zeros_like(style_targets[k]), style_targets[k]))
                 for k, w in zip(options.style_layers, layer_w, strict=True))
    style_w = {k: beta * w / max(energy, tiny) for k, w in zip(options.style_layers, layer_w, strict=True)}
    if tv <= 0:
        return content_w, style_w, 0.0
    # A flat image has no variation to be relative to: floor it at one grey level (1/255) per neighbour pair.
    per_pair_floor = 1 / 255.0**2 if options.tv_norm == "l2" else 1 / 255.0  # squared form: squared levels
    if options.tv_reference == "style" and styles:  # no style images (a pure reconstruction): the photo's
        blend = options.style_blend_weights or tuple(1.0 for _ in styles)
        per_pair = sum(b * float(losses.total_variation(s, options.tv_norm)) / _neighbour_pairs(s)
                       for b, s in zip(blend, styles, strict=True)) / sum(blend)
    else:
        per_pair = float(losses.total_variation(content, options.tv_norm)) / _neighbour_pairs(content)
    reference_tv = max(per_pair, per_pair_floor) * _neighbour_pairs(content)
    return content_w, style_w, tv / reference_tv


def _neighbour_pairs(image: Tensor) -> int:
    """How many (vertical and horizontal) neighbour differences a total variation of ``image`` sums."""
    _, c, h, w = image.shape
    return c * ((h - 1) * w + h * (w - 1))


def layer_weights(vgg: VGG, options: GatysOptions) -> tuple[float, ...]:
    """w_l of each style layer: as given (on the relative objective their scale cancels), or by default equal
    (1/L, the paper's) or proportional to 1/N_l² summing to 1 (the relative objective).

    Why 1/N_l² on the relative objective: neural-style's normalisation (G/(C·H·W) and a mean over the C² entries)
    weights E_l by 4/N_l², which favours the shallow layers (colour, brush texture) 64:16:4:1:1 over the deep
    ones; measured on photo/painting pairs, that reads as a painting where equal weights keep the photo.
    """
    layers = options.style_layers
    if options.style_layer_weights is not None:
        return tuple(options.style_layer_weights)
    if options.objective == "paper":
        return tuple(1.0 / len(layers) for _ in layers)
    raw = [1.0 / vgg.spec(k).out_channels ** 2 for k in layers]
    return tuple(r / sum(raw) for r in raw)


def _layer_guides(vgg: VGG, layers: Sequence[str], mask: Tensor, image: Tensor) -> dict[str, Tensor]:
    """Region weights of ``mask`` at each layer's feature size for ``image`` (:func:`guided.guides`)."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    return {k: guided.guides(mask, vgg.feature_shape(k, h, w)) for k in layers}


def _combine(grams: Sequence[Tensor], blend: Sequence[float], masks: guided.Masks | None) -> Tensor:
    """One target per layer: the blend of the styles' Gram matrices, or (with masks) one per region."""
    return torch.cat(list(grams)) if masks is not None else losses.blend_grams(grams, blend)
