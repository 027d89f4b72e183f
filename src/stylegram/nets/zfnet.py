"""ZFNet (Zeiler & Fergus 2014, §3 and Fig. 3) as a named-layer network built from a configuration list.

The architecture is data, as for :mod:`stylegram.nets.vgg`: :class:`Conv` items (each followed by a ReLU),
:class:`Pool` items (max pooling) and ``"N"`` (contrast normalisation across feature maps). The paper's net::

    224² RGB → conv1 96×7×7/2 → relu → pool 3×3/2 → norm → conv2 256×5×5/2 → relu → pool 3×3/2 → norm
             → conv3 384×3×3 → relu → conv4 384×3×3 → relu → conv5 256×3×3 → relu → pool 3×3/2
             → fc6 4096 → relu, dropout → fc7 4096 → relu, dropout → fc8 (classes)

Feature maps are 110², 55², 26², 13², 13², 13², 6² as in Fig. 3: conv1 pads by 1 and the pools use ceil mode.
Layers are named ``conv1, relu1, pool1, norm1, conv2, …, relu5, pool5`` (block number = the convolution's).

Departures from the paper: the weights start from He initialisation (not N(0, 10⁻²), which trains slowly
without the paper's schedule on ImageNet); contrast normalisation is cross-channel local response normalisation
with AlexNet's constants (the paper gives none); :meth:`ZFNet.renormalize_filters` is the paper's "renormalise
each filter whose RMS exceeds 10⁻¹ to this fixed radius", called by the trainer after every step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegram.core.errors import UsageError
from stylegram.nets.layered import NamedLayerNet
from stylegram.nets.vgg import Normalization

NORM = "N"
RMS_RADIUS = 0.1
# Local response normalisation across 5 neighbouring maps, AlexNet's constants.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


@dataclass(frozen=True)
class Conv:
    """A convolution with ``out`` filters of ``kernel``² pixels, followed by a ReLU."""

    out: int
    kernel: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class Pool:
    """Max pooling over ``kernel``² windows every ``stride`` pixels (ceil mode: odd edges are kept)."""

    kernel: int = 3
    stride: int = 2


ConfigItem = Conv | Pool | str

ZFNET: tuple[ConfigItem, ...] = (
    Conv(96, 7, 2, 1), Pool(3, 2), NORM,
    Conv(256, 5, 2, 0), Pool(3, 2), NORM,
    Conv(384, 3, 1, 1), Conv(384, 3, 1, 1), Conv(256, 3, 1, 1), Pool(3, 2),
)


@dataclass(frozen=True)
class ZFLayerSpec:
    """One named layer with its geometry; ``kernel``/``stride``/``padding`` are 1/1/0 for pointwise layers."""

    name: str
    kind: Literal["conv", "relu", "pool", "norm"]
    in_channels: int
    out_channels: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0


def scaled(config: Sequence[ConfigItem], width: float) -> tuple[ConfigItem, ...]:
    """``config`` with every convolution's filter count multiplied by ``width`` (at least 1 each)."""
    if not (math.isfinite(width) and width > 0):
        raise UsageError(f"width must be a positive number, got {width}")
    return tuple(Conv(max(1, round(c.out * width)), c.kernel, c.stride, c.padding) if isinstance(c, Conv) else c
                 for c in config)


def zf_layer_specs(config: Sequence[ConfigItem]) -> list[ZFLayerSpec]:
    """The named layers of ``config`` in execution order."""
    specs: list[ZFLayerSpec] = []
    block, channels = 0, 3
    for item in config:
        if isinstance(item, Conv):
            block += 1
            specs.append(ZFLayerSpec(f"conv{block}", "conv", channels, item.out, item.kernel, item.stride,
                                     item.padding))
            specs.append(ZFLayerSpec(f"relu{block}", "relu", item.out, item.out))
            channels = item.out
        elif isinstance(item, Pool):
            specs.append(ZFLayerSpec(f"pool{block}", "pool", channels, channels, item.kernel, item.stride))
        elif item == NORM:
            specs.append(ZFLayerSpec(f"norm{block}", "norm", channels, channels))
        else:
            raise UsageError(f"unknown ZFNet configuration item {item!r}")
    if block == 0:
        raise UsageError("a ZFNet configuration needs at least one convolution")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError("a ZFNet configuration may hold one pool and one norm per convolution block")
    return specs


class ZFNet(NamedLayerNet):
    """ZFNet whose forward pass returns the named feature maps asked for, and :meth:`classify` the logits.

    ``pooled`` is the side of the grid pool5 is averaged to before fc6 (6 for 224² inputs, where it changes
    nothing), so that any input size reaches the classifier; ``hidden`` are the fully connected widths.
    """

    normalize: Normalization

    title = "ZFNet"

    def __init__(self, config: Sequence[ConfigItem] = ZFNET, *, num_classes: int = 1000,
                 hidden: Sequence[int] = (4096, 4096), pooled: int = 6, dropout: float = 0.5) -> None:
        super().__init__()
        if num_classes < 1 or pooled < 1 or any(h < 1 for h in hidden) or not 0 <= dropout < 1:
            raise UsageError("ZFNet needs num_classes, pooled and hidden widths >= 1 and dropout in [0, 1)")
        self.config = tuple(config)
        self.specs = zf_layer_specs(self.config)
        self.normalize = Normalization("torchvision")
        self.convs = nn.ModuleDict({s.name: nn.Conv2d(s.in_channels, s.out_channels, s.kernel, s.stride, s.padding)
                                    for s in self.specs if s.kind == "conv"})
        self.pooled, self.dropout, self.hidden = pooled, dropout, tuple(hidden)
        widths = [self.specs[-1].out_channels * pooled * pooled, *hidden, num_classes]
        self.classifier = nn.ModuleDict({f"fc{6 + i}": nn.Linear(a, b)
                                         for i, (a, b) in enumerate(itertools.pairwise(widths))})
        self.index_layers()
        self._num_classes = num_classes
        self.reset_parameters()

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def spec(self, name: str) -> ZFLayerSpec:
        return self.specs[self.layer_index(name)]  # type: ignore[no-any-return]

    def reset_parameters(self) -> None:
        for m in [*self.convs.values(), *self.classifier.values()]:
            assert isinstance(m, nn.Conv2d | nn.Linear)
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            assert m.bias is not None
            nn.init.zeros_(m.bias)

    def run_layer(self, spec: ZFLayerSpec, h: Tensor) -> Tensor:
        if spec.kind == "conv":
            return self.convs[spec.name](h)  # type: ignore[no-any-return]
        if spec.kind == "relu":
            return F.relu(h)
        if spec.kind == "pool":
            return F.max_pool2d(h, spec.kernel, spec.stride, ceil_mode=True)
        return F.local_response_norm(h, LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K)

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (B, classes) of RGB images in [0, 1]."""
        h = self.forward(x, [self.specs[-1].name])[self.specs[-1].name]
        return self.head(h)

    def head(self, features: Tensor) -> Tensor:
        """The fully connected layers on the last feature layer's output (B, C, h, w) -> logits (B, classes)."""
        h = F.adaptive_avg_pool2d(features, (self.pooled, self.pooled)).flatten(1)
        layers = list(self.classifier.values())
        for fc in layers[:-1]:
            h = F.dropout(F.relu(fc(h)), self.dropout, self.training)
        return layers[-1](h)  # type: ignore[no-any-return]

    @torch.no_grad()
    def renormalize_filters(self, radius: float = RMS_RADIUS) -> int:
        """Scale every convolution filter whose RMS exceeds ``radius`` back to RMS ``radius`` (the paper's fix
        for filters that come to dominate layer 1); returns how many filters were rescaled."""
        count = 0
        for conv in self.convs.values():
            assert isinstance(conv, nn.Conv2d)
            w = conv.weight  # (out, in, k, k): one filter per output map
            rms = w.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
            over = rms > radius
            count += int(over.sum())
            w.mul_(torch.where(over, radius / rms.clamp_min(1e-12), torch.ones_like(rms)))
        return count
