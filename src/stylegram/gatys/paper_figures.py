"""The use cases behind ``stylegram reconstruct`` and ``stylegram grid``: the paper's Figures 1 and 3 as files.

Each job checks everything in its constructor (outputs, inputs, layers, weights) before any optimisation, and
``run(on_step)`` makes the panels, writes each with its record, and composes the labelled figure. Events are
tagged with the panel (``stage``/``stages``); a stop request keeps the finished panels and a partial figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from stylegram.core import images
from stylegram.core.device import resolve_device
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep
from stylegram.core.figures import panel_grid, panel_row
from stylegram.core.record import describe_file, new_record
from stylegram.gatys.features import check
from stylegram.gatys.options import GatysOptions
from stylegram.gatys.reconstruct import (
    reconstruct_content,
    reconstruct_style,
    style_subsets,
    subset_label,
    tradeoff_grid,
)
from stylegram.gatys.run import prepare
from stylegram.nets.vgg import VGG
from stylegram.weights import load_vgg


@dataclass(frozen=True)
class FigureResult:
    figure: Path
    panels: int  # panels made
    wanted: int  # panels asked for (more than ``panels`` when stopped)

    @property
    def stopped(self) -> bool:
        return self.panels < self.wanted


def _network(options: GatysOptions, device: torch.device) -> tuple[VGG, dict[str, Any]]:
    vgg, info = load_vgg(options.model, path=options.weights, pooling=options.pooling, classifier=False,
                         device=device)
    return vgg, {"id": info.source, "sha256": info.sha256}


class ReconstructJob:
    """White-noise reconstructions of ``image`` (Figure 1): one panel per layer (``kind="content"``) or per
    growing subset of style layers (``kind="style"``, the prefixes of ``layers`` of the given ``depths``)."""

    def __init__(self, kind: Literal["content", "style"], image: str | os.PathLike[str],
                 output_dir: str | os.PathLike[str], options: GatysOptions, *, layers: Sequence[str],
                 depths: Sequence[int] | None = None, figure: str | os.PathLike[str] | None = None,
                 device: str | torch.device | None = None) -> None:
        self.kind, self.options, self.out_dir = kind, options, Path(output_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise UsageError(f"-o must be a folder, and '{os.fspath(output_dir)}' is a file")
        self.subsets = ([(layer,) for layer in layers] if kind == "content"
                        else style_subsets(depths or range(1, len(layers) + 1), layers))
        self.layers = tuple(layers)
        self.labels = [subset_label(s) for s in self.subsets]
        self.names = [f"{kind}_{'-'.join((s[0], s[-1]) if len(s) > 1 else s)}.png" for s in self.subsets]
        self.figure = images.check_output(figure or self.out_dir / f"{kind}_figure.png", [image])
        for name in self.names:
            images.check_output(self.out_dir / name, [image])
        source = images.load_image(image)
        self.device = resolve_device(device)
        self.vgg, weights = _network(options, self.device)
        for subset in self.subsets:
            for layer in subset:
                self.vgg.spec(layer)
        self.target, _ = prepare(source, [], options, self.device)
        self.record = new_record(f"reconstruct-{kind}", self.device, weights=weights,
                                 inputs={"image": describe_file(image)})

    def run(self, on_step: OnStep | None = None) -> FigureResult:
        if self.kind == "content":
            panels = reconstruct_content(self.vgg, self.target, self.layers, self.options, on_step=on_step)
        else:
            panels = reconstruct_style(self.vgg, self.target, self.subsets, self.options, on_step=on_step)
        for panel, name in zip(panels, self.names, strict=False):
            images.save_image(images.to_pil(panel.image), self.out_dir / name, {
                **self.record, "layers": list(panel.layers), "options": panel.result.options.to_dict(),
                "iterations": panel.result.iterations, "losses": panel.result.losses,
                "seconds": round(panel.result.elapsed, 2), "interrupted": panel.result.stopped})
        fig = panel_row([images.to_pil(self.target)] + [images.to_pil(p.image) for p in panels],
                        ["input", *(p.label for p in panels)])
        stopped = len(panels) < len(self.subsets)
        images.save_image(fig.image, self.figure, {**self.record, "options": self.options.to_dict(),
                                                   "panels": [p.label for p in panels], "interrupted": stopped})
        return FigureResult(self.figure, len(panels), len(self.subsets))


def ratio_label(ratio: float) -> str:
    # Spelled out: Pillow's bundled font has no Greek glyphs.
    return f"alpha/beta = {ratio:.0e}".replace("e-0", "e-").replace("e+0", "e")


class GridJob:
    """Figure 3: rows of style-layer subsets (one ``style`` image, ``style_depths``) or of style images
    (``styles``, one depth), columns of α/β ``ratios``."""

    def __init__(self, content: str | os.PathLike[str], output: str | os.PathLike[str], options: GatysOptions, *,
                 ratios: Sequence[float], style: str | None = None, styles: Sequence[str] | None = None,
                 style_depths: Sequence[int] | None = None, device: str | torch.device | None = None) -> None:
        if any(not r > 0 for r in ratios):
            raise UsageError("every α/β ratio must be a number > 0")
        if not ratios:
            raise UsageError("give at least one α/β ratio")
        self.options, self.ratios = options, tuple(ratios)
        style_files, self.layer_rows, self.row_labels = _grid_rows(style, styles, style_depths)
        self.output = images.check_output(output, [content, *style_files])
        content_img = images.load_image(content)
        loaded = {f: images.load_image(f) for f in dict.fromkeys(style_files)}
        self.device = resolve_device(device)
        self.vgg, weights = _network(options, self.device)
        check(self.vgg, options.replace(style_layers=self.layer_rows[-1]), 1)
        self.content, styles_t = prepare(content_img, list(loaded.values()), options, self.device)
        by_file = dict(zip(loaded, styles_t, strict=True))
        self.rows = [(by_file[f], layers) for f, layers in zip(style_files, self.layer_rows, strict=True)]
        self.col_labels = [ratio_label(r) for r in ratios]
        self.cell_labels = [f"{r}, {c}" for r in self.row_labels for c in self.col_labels]
        inputs = {"content": describe_file(content), "styles": [describe_file(f) for f in loaded]}
        self.record = new_record("gatys-grid", self.device, weights=weights, inputs=inputs,
                                 options=options.to_dict(), ratios=list(ratios), rows=self.row_labels,
                                 style_layers=[list(x) for x in self.layer_rows])

    def run(self, on_step: OnStep | None = None) -> FigureResult:
        cells = tradeoff_grid(self.vgg, self.content, self.rows, self.ratios, self.options, on_step=on_step)
        blank: Image.Image = images.to_pil(self.content.new_ones(self.content.shape))
        grid = [[blank for _ in self.ratios] for _ in self.rows]
        for cell in cells:
            grid[cell.row][cell.column] = images.to_pil(cell.result.image)
        fig = panel_grid(grid, self.row_labels, self.col_labels)
        meta = {**self.record, "interrupted": len(cells) < len(self.cell_labels),
                "cells": [{"row": c.row, "column": c.column, "losses": c.result.losses,
                           "iterations": c.result.iterations, "seconds": round(c.result.elapsed, 2)} for c in cells]}
        images.save_image(fig.image, self.output, meta)
        return FigureResult(self.output, len(cells), len(self.cell_labels))


def _grid_rows(style: str | None, styles: Sequence[str] | None, depths: Sequence[int] | None,
               ) -> tuple[list[str], list[tuple[str, ...]], list[str]]:
    """(style file per row, style layers per row, row labels) from STYLE/--styles and --style-depths."""
    if (style is None) == (styles is None):
        raise UsageError("give one STYLE image or --styles A,B,…, not both" if style else
                         "give a STYLE image or --styles A,B,…")
    if style is not None:
        subsets = style_subsets(depths or (1, 2, 3, 4, 5))
        return [style] * len(subsets), subsets, [subset_label(s) for s in subsets]
    assert styles is not None
    chosen = depths or (5,)
    if len(chosen) != 1:
        raise UsageError("with --styles give one --style-depths (rows are the style images)")
    layers = style_subsets(chosen)[0]
    return list(styles), [layers] * len(styles), [Path(f).stem for f in styles]
