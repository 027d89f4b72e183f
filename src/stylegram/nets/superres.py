"""Johnson et al. (2016), "Perceptual Losses for … Super-Resolution": the ×4 / ×8 super-resolution network.

Shapes for a (B, 3, h, w) low-resolution input at full width, scale s (4 or 8; log2(s) upsampling layers):

    conv 9×9, 64 + BN + ReLU          (B, 64, h, w)
    4 residual blocks                  (B, 64, h, w)     two 3×3 conv + BN each, ReLU after the first only
    log2(s) × [up ×2, 3×3, 64 + BN + ReLU]  (B, 64, s·h, s·w)
    conv 9×9, 3                        (B, 3, s·h, s·w)  + bicubic upsampling of the input, clamped to [0, 1]

``upsample="transposed"`` (the default, the paper's layers) makes each ×2 a fractionally strided (stride ½)
3×3 convolution; ``"nearest"`` makes it nearest-neighbour ×2 then a 3×3 convolution, as the style network does
against checkerboard artefacts (see :class:`stylegram.nets.transformer.Upsample`).

Where this departs from the paper:

* The last layer predicts a residual added to the bicubic upsampling of the input (Kim et al. 2016, VDSR),
  instead of the whole image through a scaled tanh. An untrained network then already gives bicubic (the last
  layer starts at zero), and training only has to learn the missing detail; on the short CPU runs this project
  can afford that is the difference between beating bicubic and not reaching it.
* Reflection padding instead of zero padding in every stride-1 convolution: fewer border artefacts.

Batch normalisation is the paper's. In eval mode it is a fixed per-channel affine map, so an image's output does
not depend on the rest of the batch and an image cut into tiles with margins of :meth:`SuperResNet.margin` input
pixels comes out exactly as the whole image does.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegram.core.errors import UsageError

Upsampling = Literal["transposed", "nearest"]
SCALES = (2, 4, 8)
BASE_CHANNELS = 64
RESIDUAL_BLOCKS = 4
MIN_SIDE = 5
"""Smallest input side: reflection padding of the 9×9 convolution needs each side longer than its 4-pixel pad."""


def channels_for(width: float) -> int:
    if isinstance(width, bool) or not isinstance(width, int | float) or not 0.0 < float(width) <= 4.0:
        raise UsageError(f"width must be a number in (0, 4], got {width!r}")
    return max(1, round(BASE_CHANNELS * float(width)))


class ConvBN(nn.Module):
    """Reflection padding, a stride-1 convolution, batch norm and (optionally) ReLU; size in = size out."""

    def __init__(self, c_in: int, c_out: int, kernel: int, relu: bool = True) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel)
        self.norm = nn.BatchNorm2d(c_out)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.conv(self.pad(x)))
        return F.relu(y) if self.relu else y


class ResidualBlock(nn.Module):
    """Two 3×3 conv + BN layers around an identity shortcut; ReLU after the first only, none after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = ConvBN(channels, channels, 3)
        self.second = ConvBN(channels, channels, 3, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.second(self.first(x))  # type: ignore[no-any-return]


class Upsample2(nn.Module):
    """×2 in each direction, then BN and ReLU: a stride-½ convolution, or nearest ×2 and a 3×3 convolution."""

    def __init__(self, channels: int, how: Upsampling) -> None:
        super().__init__()
        self.how = how
        if how == "transposed":
            # padding 1 and output_padding 1: exactly 2h × 2w out, each output pixel from at most 2×2 inputs.
            self.conv: nn.Module = nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1)
        else:
            self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.how == "nearest":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class SuperResNet(nn.Module):
    """RGB (B, 3, h, w) in [0, 1] → RGB (B, 3, scale·h, scale·w) in [0, 1]; any h, w ≥ :data:`MIN_SIDE`."""

    def __init__(self, scale: int = 4, width: float = 1.0, blocks: int = RESIDUAL_BLOCKS,
                 upsample: Upsampling = "transposed") -> None:
        super().__init__()
        if scale not in SCALES:
            raise UsageError(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale!r}")
        if upsample not in ("transposed", "nearest"):
            raise UsageError(f"upsample must be transposed or nearest, got {upsample!r}")
        c = channels_for(width)
        self.scale, self.width, self.blocks, self.upsample = scale, float(width), blocks, upsample
        self.head = ConvBN(3, c, 9)
        self.residuals = nn.Sequential(*(ResidualBlock(c) for _ in range(blocks)))
        self.up = nn.Sequential(*(Upsample2(c, upsample) for _ in range(int(math.log2(scale)))))
        last = nn.Conv2d(c, 3, 9)
        nn.init.zeros_(last.weight)  # start as bicubic: see the module docstring
        if last.bias is not None:
            nn.init.zeros_(last.bias)
        self.out = nn.Sequential(nn.ReflectionPad2d(4), last)

    def margin(self) -> int:
        """Input pixels beyond which no output pixel can see: the tile margin that makes tiles exact.

        9×9 head (4) + 2 per residual block + 1 per ×2 layer (counted at input resolution, rounded up) + the
        9×9 output conv (4 output pixels, under one input pixel at ×4 and ×8) + 2 for the bicubic skip's taps.
        """
        return 4 + 2 * self.blocks + len(self.up) + math.ceil(4 / self.scale) + 2

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h < MIN_SIDE or w < MIN_SIDE:
            raise UsageError(f"images must be at least {MIN_SIDE}×{MIN_SIDE} pixels, got {w}×{h}")
        base = F.interpolate(x, scale_factor=float(self.scale), mode="bicubic", align_corners=False)
        y = self.out(self.up(self.residuals(self.head(x * 2.0 - 1.0))))  # centred input, as the style net
        return torch.clamp(base + y, 0.0, 1.0)
