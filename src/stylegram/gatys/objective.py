"""L_total(x) = α L_content + β L_style (+ λ_tv TV(x)) for one set of targets, evaluated on the whole image.

The weights live in the targets (:func:`stylegram.gatys.targets.term_weights`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from stylegram.gatys.features import Targets, features
from stylegram.gatys.options import GatysOptions
from stylegram.losses import functional as losses
from stylegram.nets.vgg import VGG


class Objective:
    """L_total(x) for one set of targets; calling it runs one forward pass and returns the weighted terms."""

    def __init__(self, vgg: VGG, targets: Targets, options: GatysOptions) -> None:
        self.vgg, self.targets, self.options = vgg, targets, options
        self.layers = tuple(dict.fromkeys((*options.content_layers, *options.style_layers)))

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        o, t = self.options, self.targets
        feats = features(self.vgg, x, self.layers, o.precision)
        if t.guides is not None:
            # (1, C, h, w) × (K, 1, h, w): one weighted copy of the features per region.
            feats = {**feats, **{k: feats[k] * g for k, g in t.guides.items()}}
        terms: dict[str, Tensor] = {}
        if t.content:
            parts = [t.content_weight(k) * losses.content_loss(feats[k], v) for k, v in t.content.items()]
            terms["content"] = torch.stack(parts).sum()
        if t.style:
            terms["style"] = losses.style_loss(feats, t.style, t.style_layer_weights)
        if t.tv_weight > 0:
            terms["tv"] = t.tv_weight * losses.total_variation(x, t.tv_norm)
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms

    def value_and_grad(self, x: Tensor) -> dict[str, Tensor]:
        """The weighted terms at ``x`` (detached); sets ``x.grad`` to the gradient of their total."""
        terms = self(x)
        x.grad = None
        terms["total"].backward()  # type: ignore[no-untyped-call]
        return {k: v.detach() for k, v in terms.items()}
