"""Losses as pure tensor functions: Gram matrices, content, style and total variation (:mod:`.functional`),
guided Gram matrices for spatial control (:mod:`.guided`), and the colour transforms of Gatys et al. 2017
(:mod:`.color`)."""

from stylegram.losses.functional import (
    blend_grams,
    content_loss,
    gram_matrix,
    style_layer_loss,
    style_loss,
    total_variation,
)

__all__ = ["blend_grams", "content_loss", "gram_matrix", "style_layer_loss", "style_loss", "total_variation"]
