"""Feed-forward inference in tiles, for inputs whose activations would not fit in memory at once.

The input is cut into cores of at most ``core`` × ``core`` pixels; each core is run with ``margin`` extra input
pixels on every side that has image there, and only the core's part of the output is kept. When the margin is at
least the network's reach (:meth:`stylegram.nets.superres.SuperResNet.margin`) and the network is pointwise in
its normalisation (batch norm in eval mode), the result equals the untiled one up to float rounding; at the
image border a tile's edge is the image's edge, so the padding there is the same as untiled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

__all__ = ["FLOAT", "boxes", "largest_core", "peak_bytes", "pieces", "run_tiled"]

FLOAT = 4  # bytes


def boxes(height: int, width: int, core: int) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of cores of at most ``core`` pixels a side that tile the image, rows first."""
    rows = [(t, min(t + core, height)) for t in range(0, height, core)]
    cols = [(s, min(s + core, width)) for s in range(0, width, core)]
    return [(t, s, b, e) for t, b in rows for s, e in cols]


def pieces(forward: Callable[[Tensor], Tensor], x: Tensor, scale: int, core: int, margin: int
           ) -> Iterator[tuple[int, int, Tensor]]:
    """``forward`` over (B, 3, H, W) in tiles: (top, left, piece) for each core's part of the (B, 3, sH, sW)
    output (s = ``scale``), its top-left corner in output pixels; the pieces tile the output, rows first."""
    _, _, h, w = x.shape
    for top, left, bottom, right in boxes(h, w, core):
        t, s = max(0, top - margin), max(0, left - margin)
        y = forward(x[:, :, t : min(h, bottom + margin), s : min(w, right + margin)])
        yield top * scale, left * scale, y[:, :, (top - t) * scale : (bottom - t) * scale,
                                           (left - s) * scale : (right - s) * scale]


def run_tiled(forward: Callable[[Tensor], Tensor], x: Tensor, scale: int, core: int, margin: int) -> Tensor:
    """``forward`` over (B, 3, H, W) in tiles → (B, 3, scale·H, scale·W), in ``x``'s dtype (for 8-bit output
    without a float copy of the whole, feed :func:`pieces` to :class:`stylegram.feedforward.imaging.LevelCanvas`)."""
    b, _, h, w = x.shape
    out = torch.empty(b, 3, h * scale, w * scale, dtype=x.dtype, device=x.device)
    for top, left, piece in pieces(forward, x, scale, core, margin):
        out[:, :, top : top + piece.shape[-2], left : left + piece.shape[-1]] = piece.to(out.device)
    return out


def peak_bytes(height: int, width: int, scale: int, channels: int, upsample: str = "transposed") -> int:
    """Estimated peak memory of one forward of the inference form of a super-resolution network
    (:class:`stylegram.nets.superres.FastSuperRes`) on a height × width input.

    The largest moment is the last layer at full resolution (C channels, per output pixel): with transposed
    ×2 layers, the last one's output still in phase form and its padded copy (2·C values), with the bicubic
    base, the convolution's 16-channel phase output and the sum; with nearest upsampling, the upsampled map,
    its padded and unshuffled copies (3·C). Measured with oneDNN on this CPU (C 32 and 64, tiles of 200–400
    pixels): 2.3·C + 15 and 3.4·C + 5 values a pixel, so the estimates are 2.5·C + 16 and 3.5·C + 8;
    ``benchmarks/bench_sr.py --tiled`` checks a whole run against its budget.
    """
    full = height * width * scale * scale
    per_pixel = 2.5 * channels + 16 if upsample == "transposed" else 3.5 * channels + 8
    return int(FLOAT * full * per_pixel)


def largest_core(budget: int, scale: int, channels: int, margin: int, fixed: int,
                 height: int = 1 << 30, width: int = 1 << 30, upsample: str = "transposed") -> int | None:
    """The largest core side whose tiles (core + 2·margin, within a height × width image) fit in ``budget`` −
    ``fixed`` bytes; None if not even an 8-pixel core does."""
    room = budget - fixed

    def fits(core: int) -> bool:
        side = core + 2 * margin
        return peak_bytes(min(side, height), min(side, width), scale, channels, upsample) <= room

    if not fits(8):
        return None
    core = 8
    while fits(core * 2) and core < max(height, width):
        core *= 2
    step = core // 2
    while step >= 4:  # refine between core and 2·core
        if fits(core + step):
            core += step
        step //= 2
    return core
