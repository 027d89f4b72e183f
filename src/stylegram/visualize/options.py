"""Options of the visualisation use cases, declared once (:mod:`stylegram.core.options`): the command line and
web forms derive their fields from these."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from stylegram.core.options import Options, option

SIZE_HELP = "scale each image so its longest side is this many pixels (0: keep its size)"


@dataclass(frozen=True)
class ProjectOptions(Options):
    layer: str = option("relu5_3", "the layer whose activation is projected")
    channel: int | None = option(None, "feature map (default: the one with the layer's strongest activation)", min=0)
    position: tuple[int, ...] | None = option(None, "Y,X of the unit in the map (default: the map's maximum)",
                                              min=0)
    rule: Literal["deconvnet", "guided", "gradient"] = option("deconvnet", "what each ReLU does on the way down")
    size: int = option(224, SIZE_HELP, min=0, max=4096)

    def problems(self) -> Iterator[str]:
        if self.position is not None and len(self.position) != 2:
            yield f"position takes two numbers Y,X, got {len(self.position)}"


@dataclass(frozen=True)
class TopOptions(Options):
    layers: tuple[str, ...] = option(("relu2_2", "relu3_3", "relu4_3", "relu5_3"), "layers to look into")
    channels: tuple[int, ...] | None = option(None, "feature maps of every layer (default: --random of them)",
                                              min=0)
    random: int = option(4, "without --channels: this many maps per layer, drawn with --seed", min=1, max=4096)
    seed: int = option(0, "seed for --random", min=0)
    k: int = option(9, "images per map", min=1, max=100)
    rule: Literal["deconvnet", "guided", "gradient"] = option("deconvnet", "what each ReLU does on the way down")
    size: int = option(0, SIZE_HELP, min=0, max=4096)
    batch_size: int = option(16, "images per forward pass", min=1, max=1024)


@dataclass(frozen=True)
class OcclusionOptions(Options):
    layer: str = option("relu5_3", "the layer whose strongest map is watched (the paper's layer 5)")
    window: int = option(32, "side of the grey square in pixels", min=1)
    stride: int = option(8, "pixels between square positions", min=1)
    fill: float = option(0.5, "grey level of the square (0 black, 1 white)", min=0, max=1)
    channel: int | None = option(None, "feature map (default: the one with the strongest activation)", min=0)
    target: int | None = option(None, "class for panel (d) (default: the unoccluded image's top class)", min=0)
    rule: Literal["deconvnet", "guided", "gradient"] = option("deconvnet", "the ReLU rule of panel (c)")
    size: int = option(224, SIZE_HELP, min=0, max=4096)
    batch_size: int = option(32, "occluded images per forward pass", min=1, max=4096)


@dataclass(frozen=True)
class EvolutionOptions(Options):
    layer: str = option("relu2", "the layer whose maps are followed")
    channels: tuple[int, ...] = option((0, 1, 2, 3), "feature maps, one row each", min=0)
    rule: Literal["deconvnet", "guided", "gradient"] = option("deconvnet", "what each ReLU does on the way down")
    size: int = option(0, SIZE_HELP, min=0, max=4096)
