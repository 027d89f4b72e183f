"""The paper's figures, composed with :mod:`stylegram.core.figures`: a projection (§2.1), the top-9 grids
(Fig. 2), occlusion panels (Fig. 7) and feature evolution (Fig. 4).

Projections are signed; they are shown centred on grey (zero is mid-grey), scaled so that the 99.5th percentile
of their magnitudes touches black or white, as the paper's figures show them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from stylegram.core.figures import Figure, FigureStyle, panel_grid, panel_row
from stylegram.core.images import to_pil
from stylegram.visualize.evolution import Evolution
from stylegram.visualize.occlusion import OcclusionResult
from stylegram.visualize.project import Projection
from stylegram.visualize.receptive import Box
from stylegram.visualize.top import TopResult

# A perceptually ordered ramp (dark blue → purple → orange → pale yellow), RGB in [0, 1].
_RAMP = torch.tensor([[0.05, 0.03, 0.25], [0.35, 0.05, 0.50], [0.75, 0.20, 0.35], [0.98, 0.55, 0.10],
                      [0.99, 0.95, 0.60]])
_TIGHT = FigureStyle(gap=2, font_size=10)


def show_projection(t: Tensor) -> Image.Image:
    """A signed projection (3, h, w) or (1, 3, h, w) as an image: grey is zero, clipped at ±the scale."""
    t = t.detach().float().cpu()
    t = t[0] if t.dim() == 4 else t
    # A robust scale: the 99.5th percentile of |p|, so that a few extreme pixels do not grey out the rest.
    magnitudes = t.abs().flatten()
    if magnitudes.numel() > 1 << 22:
        magnitudes = magnitudes[:: magnitudes.numel() // (1 << 22) + 1]
    scale = float(magnitudes.quantile(0.995)) if magnitudes.numel() else 0.0
    scale = scale if scale > 0 else float(t.abs().max())
    return to_pil(0.5 + t / (2 * scale) if scale > 0 else torch.full_like(t, 0.5))


def heatmap(grid: Tensor, size: tuple[int, int]) -> Image.Image:
    """A (rows, cols) map coloured low (dark) to high (bright), stretched to ``size`` (width, height); NaN is
    white (positions not computed)."""
    g = grid.detach().float().cpu()
    finite = g[torch.isfinite(g)]
    low, high = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 1.0)
    u = ((g - low) / (high - low) if high > low else torch.zeros_like(g)).clamp(0, 1).nan_to_num(0.0)
    pos = u * (len(_RAMP) - 1)
    i = pos.floor().long().clamp(max=len(_RAMP) - 2)
    frac = (pos - i)[..., None]
    rgb = _RAMP[i] * (1 - frac) + _RAMP[i + 1] * frac  # (rows, cols, 3)
    rgb[~torch.isfinite(g)] = 1.0
    return to_pil(rgb.permute(2, 0, 1)).resize(size, Image.Resampling.NEAREST)


def class_map(grid: Tensor, size: tuple[int, int]) -> Image.Image:
    """A (rows, cols) map of class numbers, one colour per class (-1, not computed, is white)."""
    g = grid.detach().long().cpu()
    gen = torch.Generator().manual_seed(7)
    palette = torch.rand(int(g.max()) + 2 if g.numel() else 1, 3, generator=gen) * 0.8 + 0.1
    rgb = palette[g.clamp_min(0)]
    rgb[g < 0] = 1.0
    return to_pil(rgb.permute(2, 0, 1)).resize(size, Image.Resampling.NEAREST)


def with_box(img: Image.Image, box: Box, colour: tuple[int, int, int] = (255, 40, 40)) -> Image.Image:
    """A copy of ``img`` with ``box`` (top, left, bottom, right) outlined."""
    out = img.copy()
    top, left, bottom, right = box
    ImageDraw.Draw(out).rectangle((left, top, right - 1, bottom - 1), outline=colour, width=max(1, img.width // 150))
    return out


def _tile(img: Image.Image, side: int) -> Image.Image:
    """``img`` scaled to fit a ``side``² square, centred on white."""
    scale = side / max(img.size)
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    sheet = Image.new("RGB", (side, side), (255, 255, 255))
    sheet.paste(small, ((side - small.width) // 2, (side - small.height) // 2))
    return sheet


def mosaic(tiles: Sequence[Image.Image], columns: int, side: int) -> Image.Image:
    """Up to ``columns`` tiles per row, each fitted to ``side``² (missing ones left white)."""
    squares = [_tile(t, side) for t in tiles] or [Image.new("RGB", (side, side), (255, 255, 255))]
    rows = -(-len(squares) // columns)
    squares += [Image.new("RGB", (side, side), (255, 255, 255))] * (rows * columns - len(squares))
    grid = [squares[r * columns : (r + 1) * columns] for r in range(rows)]
    return panel_grid(grid, style=_TIGHT).image


def projection_figure(image: Tensor, proj: Projection) -> Figure:
    """The image with the unit's receptive field, the projection, and both cropped to the field."""
    photo = to_pil(image)
    shown = show_projection(proj.image)
    top, left, bottom, right = proj.box
    crop = (left, top, right, bottom)
    labels = [f"image, {proj.layer} field", f"{proj.rule} projection", "projection in field", "image patch"]
    title = (f"{proj.layer} map {proj.channel} at {proj.position[0]},{proj.position[1]}: "
             f"activation {proj.activation:.3g}")
    return panel_row([with_box(photo, proj.box), shown, shown.crop(crop), photo.crop(crop)], labels, title=title,
                     height=max(128, min(384, photo.height)))


def top_figure(result: TopResult, columns: int = 3, side: int = 64) -> Figure:
    """One row per map: its top hits' projections beside their image patches (Fig. 2)."""
    rows, labels = [], []
    for layer, top in result.layers.items():
        for channel, hits in zip(top.channels, top.hits, strict=True):
            projections = [show_projection(h.projection) for h in hits if h.projection is not None]
            patches = [to_pil(h.patch) for h in hits if h.patch is not None]
            rows.append([mosaic(projections, columns, side), mosaic(patches, columns, side)])
            labels.append(f"{layer}\nmap {channel}")
    return panel_grid(rows, labels, ["projections", "image patches"], title=f"top {_count(result)} over "
                      f"{result.images} images")


def _count(result: TopResult) -> int:
    return max((len(h) for top in result.layers.values() for h in top.hits), default=0)


def occlusion_figure(image: Tensor, result: OcclusionResult, class_names: Sequence[str] | None = None) -> Figure:
    """Panels (a) the image with one square, (b) the map's total activation, (c) its strongest activation's
    projection and, with a classifier, (d) the target's probability and (e) the most probable class."""
    photo = to_pil(image)
    size = photo.size
    example = photo.copy()
    i, j = len(result.tops) // 2, len(result.lefts) // 2
    t, left, w = result.tops[i], result.lefts[j], result.window
    grey = round(255 * result.fill)
    ImageDraw.Draw(example).rectangle((left, t, left + w - 1, t + w - 1), fill=(grey, grey, grey))
    panels = [example, heatmap(result.activation, size), show_projection(result.projection.image)]
    labels = ["(a) input, occluded", f"(b) {result.layer} map {result.channel}\ntotal activation",
              "(c) projection"]
    if result.probability is not None and result.predicted is not None:
        name = _name(result.target, class_names)
        panels += [heatmap(result.probability, size), class_map(result.predicted, size)]
        labels += [f"(d) p({name})", "(e) most probable class"]
    title = f"occlusion: {w}-pixel square every {result.stride} pixels"
    return panel_row(panels, labels, title=title, height=max(128, min(320, photo.height)))


def _name(index: int | None, names: Sequence[str] | None) -> str:
    if index is None:
        return "?"
    return names[index] if names is not None and 0 <= index < len(names) else f"class {index}"


def evolution_figure(evo: Evolution, side: int = 64) -> Figure:
    """Rows: maps; columns: epochs; each cell the map's strongest activation projected (Fig. 4)."""
    blank = Image.new("RGB", (side, side), (255, 255, 255))
    rows = [[_tile(show_projection(h.projection), side) if h is not None and h.projection is not None else blank
             for h in hits] for hits in evo.hits]
    return panel_grid(rows, [f"map {c}" for c in evo.channels], [f"epoch {e}" for e in evo.epochs],
                      title=f"{evo.layer}: strongest projection per epoch")
