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


# ---------------------------------------------------------------------------------------------- inference


def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """The weight and bias of ``conv`` followed by ``norm`` in eval mode (a per-channel affine map)."""
    assert norm.running_var is not None and norm.running_mean is not None
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0  # ConvTranspose2d weights are (C_in, C_out, k, k)
    shape = [1, 1, 1, 1]
    shape[out_dim] = -1
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    return conv.weight * scale.view(shape), (bias - norm.running_mean) * scale + norm.bias


def _phase_kernel(weight: Tensor) -> Tensor:
    """A stride-2 3×3 transposed convolution (padding 1, output padding 1) as one 2×2 convolution that writes
    the four output phases as channels: ``weight`` (C_in, C_out, 3, 3) → (4·C_out, C_in, 2, 2), channel
    4·o + 2·a + b holding output pixel (2i + a, 2j + b), in the order :func:`torch.nn.functional.pixel_shuffle`
    reads. Output row 2i takes input row i through tap 1; row 2i + 1 takes row i through tap 2 and row i + 1
    through tap 0 (and likewise for columns)."""
    c_in, c_out = weight.shape[:2]
    taps = {(0, 0): 1, (1, 0): 2, (1, 1): 0}  # (phase, input offset) -> kernel index; (0, 1) takes nothing
    kernel = weight.new_zeros(c_out, 2, 2, c_in, 2, 2)
    for (a, u), m in taps.items():
        for (b, v), n in taps.items():
            kernel[:, a, b, :, u, v] = weight[:, :, m, n].t()
    return kernel.reshape(4 * c_out, c_in, 2, 2)


class _PhaseUp(nn.Module):
    """A folded Upsample2("transposed"): one 2×2 convolution at the input's resolution, pixel shuffle, ReLU."""

    def __init__(self, up: Upsample2) -> None:
        super().__init__()
        assert isinstance(up.conv, nn.ConvTranspose2d)
        weight, bias = _fold(up.conv, up.norm)
        self.conv = nn.Conv2d(weight.shape[0], weight.shape[1], 2)
        self.conv.weight = nn.Parameter(_phase_kernel(weight))
        self.conv.bias = nn.Parameter(bias.repeat_interleave(4))

    def phases(self, x: Tensor) -> Tensor:
        """The layer's output before the pixel shuffle, rectified: (B, 4·C, h, w), channel 4·c + 2·a + b
        holding output pixel (2i + a, 2j + b) (ReLU commutes with the shuffle)."""
        y: Tensor = self.conv(F.pad(x, (0, 1, 0, 1)))
        return y.relu_()

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.phases(x), 2)


class _FoldedConv(nn.Module):
    """Reflection padding and a stride-1 convolution with its batch norm folded in (ReLU optional)."""

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d, relu: bool, nearest: bool = False) -> None:
        super().__init__()
        weight, bias = _fold(conv, norm)
        k = int(conv.kernel_size[0])
        self.pad, self.relu, self.nearest = k // 2, relu, nearest
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, k)
        self.conv.weight, self.conv.bias = nn.Parameter(weight), nn.Parameter(bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.nearest:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        y = self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))
        return F.relu(y) if self.relu else y


def _phase_out_kernel(weight: Tensor) -> Tensor:
    """A k×k convolution (k odd) on a 2h × 2w map as a ⌈(k+1)/2⌉² convolution on its pixel-unshuffled h × w
    phases: ``weight`` (C_out, C_in, k, k) → (4·C_out, 4·C_in, r, r), r = (k + 1) // 2. Output pixel
    (2i + a, 2j + b) reads padded input pixel (2i + a + dy, 2j + b + dx) = phase (a', b') of unshuffled pixel
    (i + t, j + u) with 2t + a' = a + dy; so entry [(o, a, b), (c, a', b'), t, u] is weight[o, c, 2t + a' − a,
    2u + b' − b] where that tap exists, and 0 elsewhere."""
    c_out, c_in, k, _ = weight.shape
    r = (k + 1) // 2
    kernel = weight.new_zeros(c_out, 2, 2, c_in, 2, 2, r, r)
    for a in range(2):
        for b in range(2):
            for ap in range(2):
                for bp in range(2):
                    for t in range(r):
                        dy = 2 * t + ap - a
                        if not 0 <= dy < k:
                            continue
                        for u in range(r):
                            dx = 2 * u + bp - b
                            if 0 <= dx < k:
                                kernel[:, a, b, :, ap, bp, t, u] = weight[:, :, dy, dx]
    return kernel.reshape(4 * c_out, 4 * c_in, r, r)


class _PhaseOut(nn.Module):
    """The last layer (reflection padding, a k×k convolution to 3 channels) run on the four pixel phases of its
    input: 12 output channels at half the resolution instead of 3 at full, which a CPU's vector units fill far
    better (the same multiply-adds, ×(r²·4)/k², r = (k + 1)/2), and zero-padded to 16 channels, a whole vector
    (measured: 12 channels ran slower than 16). Needs an even-sized input, which every ×2 layer gives.

    :meth:`from_phases` takes the previous layer's output still in phase form (see :func:`padded_phases`),
    which saves the shuffle, padding and unshuffle of the full-resolution map between them."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        assert conv.bias is not None
        self.pad = int(conv.kernel_size[0]) // 2
        kernel = _phase_out_kernel(conv.weight.detach())
        self.outs = kernel.shape[0]
        padded = -(-self.outs // 16) * 16
        weight = kernel.new_zeros(padded, *kernel.shape[1:])
        weight[: self.outs] = kernel
        bias = kernel.new_zeros(padded)
        bias[: self.outs] = conv.bias.detach().repeat_interleave(4)
        self.conv = nn.Conv2d(kernel.shape[1], padded, kernel.shape[-1])
        self.conv.weight, self.conv.bias = nn.Parameter(weight), nn.Parameter(bias)

    def forward(self, x: Tensor, phases: bool = False) -> Tensor:
        """The layer on a (B, C, 2h, 2w) map, or with ``phases`` on its (B, 4·C, h, w) pixel-unshuffled form."""
        if phases:
            q = padded_phases(x, self.pad)
        else:
            q = F.pad(x, (self.pad,) * 4, mode="reflect")
            if q.shape[-1] % 2 or q.shape[-2] % 2:
                raise ValueError("the phase form of the last layer needs an even-sized input")
            q = F.pixel_unshuffle(q, 2)
        return F.pixel_shuffle(self.conv(q)[:, : self.outs], 2)


def padded_phases(y: Tensor, pad: int) -> Tensor:
    """``pixel_unshuffle(reflection_pad(pixel_shuffle(y), pad))`` for an even ``pad``, made in one copy:
    ``y`` (B, 4·C, h, w) holds the phases of a 2h × 2w map (channel 4·c + 2·a + b: pixel (2i + a, 2j + b)).

    An even reflection keeps each pixel's phase (2h, 2w and ``pad`` are even), so the result is ``y`` moved
    ``pad``/2 phase pixels in, plus borders copied phase by phase from inside it: on a phase-a row side,
    padded phase row r < pad/2 is row pad − r − a and, counted from the far end, row −(1 + t) is row
    t − a − pad (offsets that do not depend on h or w). The result keeps ``y``'s memory format."""
    b, c4, h, w = y.shape
    k = pad // 2
    q = torch.empty(b, c4, h + pad, w + pad, dtype=y.dtype, device=y.device, memory_format=_format_of(y))
    q[:, :, k : k + h, k : k + w] = y
    view = q.view(b, c4 // 4, 2, 2, h + pad, w + pad)  # (B, C, a, b, rows, cols): a view in either format
    for a in range(2):
        for r in range(k):
            view[:, :, a, :, r, k : k + w] = view[:, :, a, :, pad - r - a, k : k + w]
            view[:, :, a, :, -(1 + r), k : k + w] = view[:, :, a, :, r - a - pad, k : k + w]
    for a in range(2):  # columns last, over every row: the corners come out as a 2-D reflection's
        for r in range(k):
            view[:, :, :, a, :, r] = view[:, :, :, a, :, pad - r - a]
            view[:, :, :, a, :, -(1 + r)] = view[:, :, :, a, :, r - a - pad]
    return q


def _format_of(t: Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


class FastSuperRes(nn.Module):
    """The function of a :class:`SuperResNet` in eval mode, rearranged for inference: every batch norm folded
    into the convolution before it, and every stride-½ convolution run as a 2×2 convolution at the lower
    resolution followed by a pixel shuffle (:func:`_phase_kernel`), which does 16 multiply-adds per input pixel
    and channel pair where the transposed convolution's scatter does 9 but runs as one large matrix product
    instead of a slow scatter and two layout copies. Equal to the network's output up to float rounding
    (tests/feedforward/test_superres.py). A snapshot: later changes to the network do not reach it."""

    def __init__(self, net: SuperResNet) -> None:
        super().__init__()
        self.scale, self._margin = net.scale, net.margin()
        self.head = _FoldedConv(net.head.conv, net.head.norm, relu=True)
        blocks = [b for b in net.residuals if isinstance(b, ResidualBlock)]
        self.firsts = nn.ModuleList(_FoldedConv(b.first.conv, b.first.norm, True) for b in blocks)
        self.seconds = nn.ModuleList(_FoldedConv(b.second.conv, b.second.norm, False) for b in blocks)
        ups: list[nn.Module] = []
        for up in net.up:
            assert isinstance(up, Upsample2)
            if isinstance(up.conv, nn.ConvTranspose2d):
                ups.append(_PhaseUp(up))
            else:
                assert isinstance(up.conv, nn.Sequential) and isinstance(up.conv[1], nn.Conv2d)
                ups.append(_FoldedConv(up.conv[1], up.norm, relu=True, nearest=True))
        self.up = nn.Sequential(*ups)
        last = net.out[1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        self.out = _PhaseOut(last)  # the name the bfloat16 hook looks for

    def margin(self) -> int:
        return self._margin

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if x.dim() != 4 or x.shape[1] != 3 or h < MIN_SIDE or w < MIN_SIDE:
            raise UsageError(f"expected an RGB batch (B, 3, H, W) of at least {MIN_SIDE}×{MIN_SIDE}, got "
                             f"{tuple(x.shape)}")
        base = F.interpolate(x, scale_factor=float(self.scale), mode="bicubic", align_corners=False)
        y = self.head(x * 2.0 - 1.0)
        for first, second in zip(self.firsts, self.seconds, strict=True):
            y = y + second(first(y))
        if torch._C._get_tracing_state() is not None or torch.onnx.is_in_onnx_export():
            # The plain form for export (ONNX runtimes plan their own layouts).
            return torch.clamp(base + self.out(self.up(y)), 0.0, 1.0)
        # From here on channels-last (NHWC), the layout oneDNN's large convolutions run fastest in (measured:
        # the ×2 layers and the last layer ~1.7× faster than NCHW; the small residual convolutions are not).
        y = y.contiguous(memory_format=torch.channels_last)
        *firsts, last = self.up
        for up in firsts:
            y = up(y)
        if isinstance(last, _PhaseUp) and self.out.pad % 2 == 0:
            y = self.out(last.phases(y), phases=True)
        else:
            y = self.out(last(y))
        return torch.clamp(base + y, 0.0, 1.0)


def for_inference(net: SuperResNet) -> FastSuperRes:
    """A frozen :class:`FastSuperRes` copy of ``net`` (on its device), for inference only."""
    with torch.no_grad():
        fast = FastSuperRes(net.eval())
    fast.to(next(net.parameters()).device).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
