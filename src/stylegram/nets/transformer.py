"""Johnson et al. (2016), "Perceptual Losses for Real-Time Style Transfer": the feed-forward transform network.

One forward pass turns a photo into a stylised image; :mod:`stylegram.train` fits it to one style. The network
knows nothing about training, losses or files. Shapes for a (B, 3, H, W) input at full width (H, W multiples of 4):

    conv 9×9, 32          (B, 32, H, W)
    conv 3×3 stride 2, 64 (B, 64, H/2, W/2)
    conv 3×3 stride 2, 128(B, 128, H/4, W/4)
    5 residual blocks     (B, 128, H/4, W/4)
    up ×2, conv 3×3, 64   (B, 64, H/2, W/2)
    up ×2, conv 3×3, 32   (B, 32, H, W)
    conv 9×9, 3 + sigmoid (B, 3, H, W)

Where this departs from the paper:

* Instance normalisation (Ulyanov et al. 2016) instead of batch normalisation, as in Johnson's later code: each
  image is normalised by its own per-channel statistics, so the output does not depend on the rest of the batch
  and training and inference behave alike.
* Reflection padding everywhere instead of zero padding, and no cropping in the residual blocks (the paper pads
  the input by 40 px and uses unpadded convolutions): fewer border artefacts and any size in, same size out.
* Upsampling is nearest-neighbour ×2 followed by a 3×3 convolution instead of a stride-½ (transposed) convolution;
  see :class:`Upsample` for why.
* The output goes through a sigmoid instead of the paper's scaled tanh; see :class:`TransformerNet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegram.core.errors import UsageError

ARCHITECTURE = "johnson2016"
"""Name recorded in model files, so a loader can tell which network a set of tensors belongs to."""

BASE_CHANNELS = (32, 64, 128)
RESIDUAL_BLOCKS = 5
MULTIPLE = 4
"""Two stride-2 convolutions: H and W must be multiples of 4 for the upsampled output to line up with the input."""
MIN_SIDE = 8
"""Smallest input side: reflection padding needs each padded side longer than the pad (4 px for the 9×9 convs)."""


def channels_for(width: float) -> tuple[int, int, int]:
    """Channel counts of the three resolutions for a width multiplier (1.0 → 32, 64, 128; 0.5 → 16, 32, 64)."""
    if not isinstance(width, int | float) or isinstance(width, bool) or not 0.0 < float(width) <= 4.0:
        raise UsageError(f"width must be a number in (0, 4], got {width!r}")
    return tuple(max(1, round(c * float(width))) for c in BASE_CHANNELS)  # type: ignore[return-value]


class ConvLayer(nn.Module):
    """Reflection padding + convolution, so a stride-1 layer keeps the size and a stride-2 one halves it exactly."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))  # type: ignore[no-any-return]


class ConvNormReLU(nn.Module):
    """Convolution, affine instance normalisation, ReLU: the network's basic unit."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, kernel, stride)
        # affine=True: a learned per-channel scale and shift after normalising each image on its own.
        # track_running_stats stays False, so eval mode uses the image's own statistics too.
        self.norm = nn.InstanceNorm2d(c_out, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResidualBlock(nn.Module):
    """Two 3×3 conv + instance-norm layers with an identity shortcut (He et al. 2016), ReLU after the first only.

    As in the paper's supplementary material, there is no ReLU after the addition: the block learns a residual
    on top of the identity. Shape (B, C, h, w) in and out.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.norm1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        out: Tensor = x + self.norm2(self.conv2(h))
        return out


class Upsample(nn.Module):
    """×2 nearest-neighbour upsampling followed by a 3×3 convolution, instance norm and ReLU.

    Why not a transposed convolution (the paper's stride-½ convolution): with kernel 3 and stride 2 its kernel
    overlaps unevenly, so some output pixels receive contributions from more input pixels than their neighbours.
    That uneven overlap prints a checkerboard pattern into the image which training must fight and rarely
    removes (Odena, Dumoulin & Olah 2016, "Deconvolution and Checkerboard Artifacts"). Resizing first and then
    convolving gives every output pixel the same number of contributions, so no such pattern arises.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.layer = ConvNormReLU(c_in, c_out, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # type: ignore[no-any-return]


class TransformerNet(nn.Module):
    """The transform network: RGB (B, 3, H, W) in [0, 1] in, the stylised RGB (B, 3, H, W) in [0, 1] out.

    Any H, W ≥ :data:`MIN_SIDE` works, odd ones too: the input is reflection-padded to a multiple of 4 and the
    output cropped back, so the result has exactly the input's size.

    Output range: the paper ends in 150·tanh on mean-subtracted 0–255 pixels, which can still leave the valid
    range and then needs clipping. A sigmoid maps straight onto (0, 1), the format of every public boundary in
    this package, so the output never needs clamping and a saturated pixel is reached only asymptotically. It
    is the same family as a scaled tanh (sigmoid(z) = (tanh(z/2) + 1)/2); the choice only fixes the scale.
    The input is centred to [-1, 1] first; the first instance norm makes the net insensitive to that scale
    anyway, but centring keeps the first convolution's bias meaningful.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3 = channels_for(width)
        self.width = float(width)
        self.down = nn.Sequential(
            ConvNormReLU(3, c1, 9),
            ConvNormReLU(c1, c2, 3, stride=2),
            ConvNormReLU(c2, c3, 3, stride=2),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(c3) for _ in range(RESIDUAL_BLOCKS)))
        self.up = nn.Sequential(Upsample(c3, c2), Upsample(c2, c1))
        # The last layer has no normalisation: it must be free to set each image's colours and contrast.
        self.out = ConvLayer(c1, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch of shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h < MIN_SIDE or w < MIN_SIDE:
            raise UsageError(f"images must be at least {MIN_SIDE}×{MIN_SIDE} pixels, got {w}×{h}")
        # Pad right and bottom to the next multiple of 4 (reflection, so the border looks like the image), and crop
        # back at the end. Unconditionally, even when the pad is 0: under ONNX tracing h and w are traced values,
        # and a Python `if` on them would freeze the export to the tracing size.
        pad_h, pad_w = (-h) % MULTIPLE, (-w) % MULTIPLE
        y = F.pad(x * 2.0 - 1.0, (0, pad_w, 0, pad_h), mode="reflect")
        y = self.up(self.residuals(self.down(y)))
        y = torch.sigmoid(self.out(y))
        return y[:, :, :h, :w]


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
