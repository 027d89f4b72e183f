"""Receptive fields: the input pixels a unit of a layer can see, as a box.

Each layer maps unit ``i`` to the window ``[i·s − p, i·s − p + k)`` of its input (kernel k, stride s, padding
p; pointwise layers are k = s = 1, p = 0). Composed from the input up, a unit of layer l covers the input pixels
``[offset + i·jump, offset + i·jump + size)`` with

    size_l = size_{l−1} + (k − 1)·jump_{l−1},   jump_l = s·jump_{l−1},   offset_l = offset_{l−1} − p·jump_{l−1}

starting from size 1, jump 1, offset 0. Boxes are clipped to the image (padding has no pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

from stylegram.visualize.layers import Network, Step, upto

Box = tuple[int, int, int, int]  # (top, left, bottom, right) in input pixels, bottom and right exclusive


@dataclass(frozen=True)
class Field:
    """The receptive field of every unit of one layer: ``size`` pixels wide, one unit every ``jump``."""

    size: int
    jump: int
    offset: int

    def span(self, i: int, length: int) -> tuple[int, int]:
        """[start, end) of unit ``i`` along an input side of ``length`` pixels."""
        start = self.offset + i * self.jump
        return max(0, start), min(length, start + self.size)

    def box(self, y: int, x: int, height: int, width: int) -> Box:
        top, bottom = self.span(y, height)
        left, right = self.span(x, width)
        return top, left, bottom, right


def field_of(path: list[Step]) -> Field:
    """The receptive field of the last of ``path`` (the steps from the input up)."""
    size, jump, offset = 1, 1, 0
    for step in path:
        k, s, p = step.geometry
        size, offset, jump = size + (k - 1) * jump, offset - p * jump, jump * s
    return Field(size, jump, offset)


def receptive_field(net: Network, layer: str) -> Field:
    """The receptive field of ``layer`` of ``net`` (VGG16's relu5_3: 196 px, one unit every 16 px)."""
    return field_of(upto(net, layer))


def receptive_box(net: Network, layer: str, y: int, x: int, height: int, width: int) -> Box:
    """The box of input pixels that unit (``y``, ``x``) of ``layer`` sees in a ``height`` × ``width`` image."""
    return receptive_field(net, layer).box(y, x, height, width)
