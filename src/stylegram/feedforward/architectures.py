"""The networks a model file can hold, by the name recorded in it: the architecture registry.

A model file records an architecture name and the few numbers that shape the network (``width``, ``scale``,
``blocks``). :func:`lookup` finds the :class:`Architecture` of a name; its :meth:`Architecture.build` makes the
network those numbers describe, which the loader then compares tensor by tensor with the file. A network added
here (and built by a function in :mod:`stylegram.nets`) can be trained, saved, loaded, applied and exported
by the same machinery as every other.

Every registered network takes RGB (B, 3, H, W) in [0, 1] and returns RGB (B, 3, scale·H, scale·W) in [0, 1],
and ends in a layer named ``out`` (the one kept in float32 when inference runs in bfloat16).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from torch import nn

from stylegram.nets import superres
from stylegram.nets.transformer import ARCHITECTURE, MIN_SIDE, RESIDUAL_BLOCKS, TransformerNet

Task = Literal["style", "superres"]
STYLE_ARCHITECTURE = ARCHITECTURE
SUPERRES_ARCHITECTURES = {"transposed": "johnson2016-sr", "nearest": "johnson2016-sr-nearest"}
"""The super-resolution architecture of each upsampling layer (see :mod:`stylegram.nets.superres`)."""
MAX_WIDTH = 4.0


@dataclass(frozen=True)
class Architecture:
    """One kind of feed-forward network: what it does, the scales and depths it can be built with, and how."""

    name: str
    task: Task
    scales: tuple[int, ...]  # output side ÷ input side; 1 for a style network
    blocks: tuple[int, int]  # the allowed number of residual blocks (inclusive range)
    default_blocks: int
    min_side: int  # the smallest input side the network takes, in pixels
    make: Callable[[float, int, int], nn.Module]  # (width, scale, blocks) → a freshly initialised network
    summary: str

    def problems(self, width: float, scale: int, blocks: int) -> Iterator[str]:
        """What is wrong with these numbers for this architecture (nothing when they fit); ``blocks`` 0 means
        the default depth."""
        if isinstance(width, bool) or not isinstance(width, int | float) or not math.isfinite(width) or not (
                0 < width <= MAX_WIDTH):
            yield f"width must be a number in (0, {MAX_WIDTH:g}], got {width!r}"
        if scale not in self.scales:
            yield f"a {self.name} network has scale {' or '.join(map(str, self.scales))}, not {scale!r}"
        low, high = self.blocks
        if blocks != 0 and not low <= blocks <= high:
            yield (f"a {self.name} network has {low} residual blocks" if low == high
                   else f"a {self.name} network has {low} to {high} residual blocks, not {blocks!r}")

    def build(self, width: float = 1.0, scale: int = 1, blocks: int = 0) -> nn.Module:
        """The network these numbers describe, with fresh weights; ValueError when they do not fit."""
        found = list(self.problems(width, scale, blocks))
        if found:
            raise ValueError("; ".join(found))
        return self.make(float(width), scale, blocks or self.default_blocks)


def _style_net(width: float, scale: int, blocks: int) -> nn.Module:
    return TransformerNet(width)


def _superres_net(how: superres.Upsampling) -> Callable[[float, int, int], nn.Module]:
    def make(width: float, scale: int, blocks: int) -> nn.Module:
        return superres.SuperResNet(scale, width, blocks, how)

    return make


_ALL = (
    Architecture(STYLE_ARCHITECTURE, "style", (1,), (RESIDUAL_BLOCKS, RESIDUAL_BLOCKS), RESIDUAL_BLOCKS, MIN_SIDE,
                 _style_net,
                 "Johnson et al. 2016 style transform network (instance norm, nearest-upsample convolutions)"),
    Architecture(SUPERRES_ARCHITECTURES["transposed"], "superres", superres.SCALES, (1, 16),
                 superres.RESIDUAL_BLOCKS, superres.MIN_SIDE, _superres_net("transposed"),
                 "Johnson et al. 2016 super-resolution network, the paper's stride-1/2 convolutions"),
    Architecture(SUPERRES_ARCHITECTURES["nearest"], "superres", superres.SCALES, (1, 16),
                 superres.RESIDUAL_BLOCKS, superres.MIN_SIDE, _superres_net("nearest"),
                 "Johnson et al. 2016 super-resolution network, nearest-upsample + 3×3 convolutions"),
)

ARCHITECTURES: Mapping[str, Architecture] = {a.name: a for a in _ALL}
"""Every architecture a model file may name."""


def lookup(name: str) -> Architecture | None:
    """The architecture called ``name``, or None when no such architecture is registered."""
    return ARCHITECTURES.get(name)
