"""Occluded images recomputed only where the square changes them.

A square at rows [t, t+w) changes, at each later layer, only the units whose input window overlaps what
changed below: a region that grows by the kernel's reach at every convolution and shrinks with every stride.
So instead of running each occluded image through the whole network, the unoccluded image runs once (every
layer's output kept), and each occluded image recomputes only its region, layer by layer: the inputs the
region's windows need are cut out of the unoccluded layer below (zero outside the map, which is the
convolutions' padding), the region computed below is pasted in, and the layer runs on that crop. A map's total
is then the unoccluded total minus the region's old sum plus its new one.

Regions have one size per layer for the whole batch (the largest; a region near an edge is moved inwards,
which recomputes a few unchanged units), so each layer is one batched call. Max pools are run on zero-padded
crops without ceil mode, which equals ceil-mode pooling only for non-negative inputs: :func:`supported` checks
that every max pool follows a ReLU, and that there is no average pooling (whose divisor at edges differs).

At VGG16's relu5_3 the region covers most of the 14² map, but in the early, expensive layers it is a small
part of the image: ~4× less arithmetic for a 15-pixel square on a 224² image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from stylegram.visualize.layers import Step, run_step


def supported(path: Sequence[Step]) -> bool:
    """Whether the walk is exact on ``path``: max pools only after ReLUs, and no average pools."""
    for i, step in enumerate(path):
        if step.kind == "avgpool" or (step.kind == "maxpool" and (i == 0 or path[i - 1].kind != "relu")):
            return False
    return True


@dataclass
class Region:
    """The recomputed part of one layer for a batch: top-left ``ys``/``xs`` (B,), one size, its values."""

    ys: Tensor  # (B,) long
    xs: Tensor
    height: int
    width: int
    values: Tensor  # (B, C, height, width)


def _grow(step: Step, region: Region, size: tuple[int, int]) -> tuple[Tensor, Tensor, int, int]:
    """The output region of ``step`` that can see ``region``: its top-left corners and one size."""
    k, s, p = step.geometry
    spans = []
    for starts, extent, limit in ((region.ys, region.height, size[0]), (region.xs, region.width, size[1])):
        first = torch.div(starts + p - k + 1 + s - 1, s, rounding_mode="floor").clamp_min(0)  # ceil division
        last = torch.div(starts + extent - 1 + p, s, rounding_mode="floor").clamp_max(limit - 1)
        length = min(limit, int((last - first).max()) + 1)
        spans.append((first.clamp_max(limit - length), length))
    (ys, h), (xs, w) = spans
    return ys, xs, h, w


def _crops(base: Tensor, region: Region, ys: Tensor, xs: Tensor, length: tuple[int, int], step: Step) -> Tensor:
    """The inputs (B, C, Lh, Lw) that the output region at (``ys``, ``xs``) reads: the unoccluded map below,
    zero outside it, with ``region``'s new values pasted in."""
    _, s, p = step.geometry
    height, width = base.shape[-2:]
    crops = base.new_zeros((len(ys), base.shape[1], *length))
    tops, lefts = (ys * s - p).tolist(), (xs * s - p).tolist()  # in the map's coordinates (<0: padding)
    rys, rxs = region.ys.tolist(), region.xs.tolist()
    for b, (top, left) in enumerate(zip(tops, lefts, strict=True)):
        # Slices, one image at a time: a gather by index tensors costs several times the copy.
        y0, x0 = max(0, -top), max(0, -left)
        y1, x1 = min(length[0], height - top), min(length[1], width - left)
        if y1 > y0 and x1 > x0:
            crops[b, :, y0:y1, x0:x1] = base[0, :, top + y0 : top + y1, left + x0 : left + x1]
        # Paste what changed below: offsets differ per image, sizes do not.
        oy, ox = rys[b] - top, rxs[b] - left
        y0, x0 = max(0, oy), max(0, ox)
        y1, x1 = min(length[0], oy + region.height), min(length[1], ox + region.width)
        if y1 > y0 and x1 > x0:
            crops[b, :, y0:y1, x0:x1] = region.values[b, :, y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return crops


def advance(step: Step, base_in: Tensor, base_out: Tensor, region: Region, out_channel: int | None = None) -> Region:
    """``region`` of ``step``'s input to the region of its output that depends on it (for a convolution, only
    output channel ``out_channel`` if given)."""
    if step.kind in ("relu", "norm"):  # pointwise in space: same region
        return Region(region.ys, region.xs, region.height, region.width, run_step(step, region.values))
    ys, xs, h, w = _grow(step, region, (base_out.shape[-2], base_out.shape[-1]))
    k, s, _ = step.geometry
    crops = _crops(base_in, region, ys, xs, ((h - 1) * s + k, (w - 1) * s + k), step)
    if step.kind == "conv":
        assert step.conv is not None
        weight, bias = step.conv.weight, step.conv.bias
        if out_channel is not None:
            weight = weight[out_channel : out_channel + 1]
            bias = None if bias is None else bias[out_channel : out_channel + 1]
        values = F.conv2d(crops, weight, bias, stride=s)
    else:  # max pool after a ReLU: zero padding never wins over a real, non-negative value
        values = F.max_pool2d(crops, k, s)
    return Region(ys, xs, h, w, values)


def squares(x: Tensor, grey: Tensor, corners: Sequence[tuple[int, int]], window: int) -> Region:
    """The input region of each occluder: a ``window``² crop of ``x`` (1, 3, H, W) holding the square of
    ``grey`` (1, 3, 1, 1) at ``corners``; a square overhanging the far edge is clipped there, and its crop
    moved inwards so that every crop has the same size."""
    height, width = x.shape[-2:]
    ys = torch.tensor([min(t, height - window) for t, _ in corners])
    xs = torch.tensor([min(left, width - window) for _, left in corners])
    values = torch.empty((len(corners), x.shape[1], window, window), device=x.device, dtype=x.dtype)
    for b, (t, left) in enumerate(corners):
        y0, x0 = int(ys[b]), int(xs[b])
        values[b] = x[0, :, y0 : y0 + window, x0 : x0 + window]
        values[b, :, t - y0 :, left - x0 :] = grey[0]
    return Region(ys, xs, window, window, values)


def channel_tail(path: Sequence[Step]) -> int:
    """Index of the last convolution of ``path`` if every step after it works channel by channel (ReLUs, max
    pools), else ``len(path)``: from there on, one output channel needs only its own channel."""
    for i in range(len(path) - 1, -1, -1):
        if path[i].kind == "conv":
            return i
        if path[i].kind not in ("relu", "maxpool"):
            break
    return len(path)


def occluded_regions(path: Sequence[Step], bases: Sequence[Tensor], x: Tensor, region: Region,
                     keep: str, channel: int | None = None) -> tuple[Region, Region]:
    """The recomputed regions at layer ``keep`` and at the last of ``path``, from the occluders' input
    ``region`` (:func:`squares`); ``x`` is the normalised unoccluded input (1, 3, H, W) and ``bases`` are
    every step's output for ``x`` (one recorded pass of the
    unoccluded image). With ``channel``, only that channel of the last maps is wanted: from the last
    convolution on (:func:`channel_tail`) the regions hold it alone, one channel instead of all."""
    tail = channel_tail(path) if channel is not None else len(path)
    kept, below = region, x
    with torch.no_grad():
        for i, (step, base) in enumerate(zip(path, bases, strict=True)):
            if channel is not None and i >= tail:
                region = advance(step, below, base, region, channel if step.kind == "conv" else None)
                below = base[:, channel : channel + 1]
            else:
                region = advance(step, below, base, region)
                below = base
            if step.name == keep:
                kept = region
    return kept, region


def paste(base: Tensor, region: Region) -> Tensor:
    """Whole maps (B, C, H, W): ``base`` with each image's region put in."""
    out = base.expand(region.values.shape[0], -1, -1, -1).clone()
    for b in range(out.shape[0]):
        y, x = int(region.ys[b]), int(region.xs[b])
        out[b, :, y : y + region.height, x : x + region.width] = region.values[b]
    return out


def region_sums(plane: Tensor, region: Region) -> Tensor:
    """Sum of ``plane`` (H, W) over each image's region, (B,), from one summed-area table."""
    table = F.pad(plane.double().cumsum(0).cumsum(1), (1, 0, 1, 0))
    y0, x0 = region.ys, region.xs
    y1, x1 = y0 + region.height, x0 + region.width
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
