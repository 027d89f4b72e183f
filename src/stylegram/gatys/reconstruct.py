"""Reconstructions from white noise: what one VGG layer keeps of an image (Gatys et al. 2016, Figure 1).

* Content reconstructions: a white-noise image is optimised to match one layer's feature maps and nothing
  else. Lower layers give near-perfect copies; higher layers keep the arrangement of objects and lose the
  exact pixels.
* Style reconstructions: a white-noise image is optimised to match only the Gram matrices of a growing subset
  of layers (relu1_1; relu1_1 + relu2_1; … up to relu5_1). The result is a texture of the image whose
  structures grow with the depth of the subset, while the global arrangement is lost.

Layer names: the paper names layers after Caffe blobs, whose ReLUs work in place, so its "conv1_1" response is
the rectified output, ``relu1_1`` here. Defaults therefore use relu names; any layer name (``conv3_1``,
``pool2``) is accepted.

Both are Gatys optimisations with one of the two terms switched off, so they run through :func:`gatys.run`
with options derived from the caller's (size, iterations, seed, optimiser, precision are kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, tagged
from stylegram.gatys.options import PAPER_STYLE_LAYERS, GatysOptions
from stylegram.gatys.run import GatysResult, run
from stylegram.nets.vgg import VGG

CONTENT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LAYERS = PAPER_STYLE_LAYERS


@dataclass(frozen=True)
class Reconstruction:
    """One panel: the layers it was matched on, a label for figures, and the run that made it."""

    layers: tuple[str, ...]
    label: str
    result: GatysResult

    @property
    def image(self) -> Tensor:  # (1, 3, H, W) RGB in [0, 1]
        return self.result.image


def content_options(options: GatysOptions, layer: str) -> GatysOptions:
    """``options`` reduced to a content-only objective on ``layer``, starting from white noise."""
    return options.replace(
        objective="paper", content_layers=(layer,), style_layers=(), content_weight=1.0, style_weight=0.0,
        tv_weight=0.0,
        style_layer_weights=None, style_blend_weights=None, original_colors=False, init="noise",
    )


def style_options(options: GatysOptions, layers: Sequence[str]) -> GatysOptions:
    """``options`` reduced to a style-only objective on ``layers`` (equal weights), starting from white noise."""
    return options.replace(
        objective="paper", content_layers=(), style_layers=tuple(layers), content_weight=0.0, style_weight=1.0,
        tv_weight=0.0,
        style_layer_weights=None, style_blend_weights=None, original_colors=False, init="noise",
    )


def style_subsets(
    depths: Sequence[int] = (1, 2, 3, 4, 5), layers: Sequence[str] = STYLE_LAYERS
) -> list[tuple[str, ...]]:
    """The first ``d`` of ``layers`` for each depth ``d``: (relu1_1,), (relu1_1, relu2_1), …"""
    subsets = []
    for d in depths:
        if not 1 <= d <= len(layers):
            raise UsageError(f"style depth must be between 1 and {len(layers)}, got {d}")
        subsets.append(tuple(layers[:d]))
    return subsets


def subset_label(layers: Sequence[str]) -> str:
    """A short figure label: ``relu3_1`` for one layer, ``relu1_1…relu3_1`` for a run of them."""
    if not layers:
        raise ValueError("an empty layer subset has no label")
    return layers[0] if len(layers) == 1 else f"{layers[0]}…{layers[-1]}"


def reconstruct_content(
    vgg: VGG, image: Tensor, layers: Sequence[str], options: GatysOptions, *, on_step: OnStep | None = None,
) -> list[Reconstruction]:
    """One white-noise reconstruction of ``image`` (RGB (1, 3, H, W) in [0, 1]) per layer in ``layers``.

    The output has ``image``'s size; every panel starts from the same noise (``options.seed``) so that the
    panels differ only by layer. ``on_step`` events carry ``stage``/``stages``; if it asks to stop, the panels
    made so far (the last one partial) are returned.
    """
    if not layers:
        raise UsageError("give at least one layer to reconstruct from")
    for layer in layers:
        vgg.spec(layer)  # fail before any work on an unknown name
    out: list[Reconstruction] = []
    for i, layer in enumerate(layers):
        result = run(vgg, image, [], content_options(options, layer), on_step=tagged(on_step, i, len(layers)))
        out.append(Reconstruction((layer,), layer, result))
        if result.stopped:
            break
    return out


def reconstruct_style(
    vgg: VGG, image: Tensor, subsets: Sequence[Sequence[str]], options: GatysOptions, *,
    on_step: OnStep | None = None,
) -> list[Reconstruction]:
    """One white-noise texture of ``image`` per subset of style layers (see :func:`style_subsets`).

    The texture has ``image``'s size (``image`` is passed as the content only to set it; the content term is
    off). Stopping works as in :func:`reconstruct_content`.
    """
    if not subsets or any(not s for s in subsets):
        raise UsageError("give at least one non-empty subset of style layers")
    for layer in {name for s in subsets for name in s}:
        vgg.spec(layer)
    out: list[Reconstruction] = []
    for i, layers in enumerate(subsets):
        opts = style_options(options, layers)
        result = run(vgg, image, [image], opts, on_step=tagged(on_step, i, len(subsets)))
        out.append(Reconstruction(tuple(layers), subset_label(layers), result))
        if result.stopped:
            break
    return out


# ------------------------------------------------------------------ the content/style trade-off (Figure 3)


def ratio_options(options: GatysOptions, ratio: float, style_layers: Sequence[str]) -> GatysOptions:
    """``options`` with α/β = ``ratio`` (α = 1, β = 1/ratio) on the paper's objective and ``style_layers``
    weighted equally."""
    if ratio <= 0:
        raise UsageError(f"an α/β ratio must be > 0, got {ratio:g}")
    return options.replace(
        objective="paper", content_weight=1.0, style_weight=1.0 / ratio, style_layers=tuple(style_layers),
        style_layer_weights=None,
        style_blend_weights=None,
    )


@dataclass(frozen=True)
class GridCell:
    row: int
    column: int
    style_layers: tuple[str, ...]
    ratio: float  # α/β
    result: GatysResult


def tradeoff_grid(
    vgg: VGG, content: Tensor, rows: Sequence[tuple[Tensor, Sequence[str]]], ratios: Sequence[float],
    options: GatysOptions, *, on_step: OnStep | None = None,
) -> list[GridCell]:
    """Stylise ``content`` once per (row, ratio): a row is a style image (1, 3, H, W) and its style layers.

    Rows of one style with growing layer subsets give the paper's Figure 3; rows of different styles with the
    same layers give a content × style grid. Cells run row by row; ``on_step`` events carry the cell index as
    ``stage``. If it asks to stop, the cells made so far (the last one partial) are returned.
    """
    if not rows or not ratios:
        raise UsageError("a grid needs at least one row and one ratio")
    plans = [(i, j, style, tuple(layers), ratio_options(options, ratio, layers))
             for i, (style, layers) in enumerate(rows) for j, ratio in enumerate(ratios)]
    out: list[GridCell] = []
    for k, (i, j, style, layers, opts) in enumerate(plans):
        result = run(vgg, content, [style], opts, on_step=tagged(on_step, k, len(plans)))
        out.append(GridCell(i, j, layers, ratios[j], result))
        if result.stopped:
            break
    return out
