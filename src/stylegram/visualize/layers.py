"""The layers of a VGG or ZFNet as one list of :class:`Step` records, the form every visualisation walks.

A step is one named layer with its geometry: a convolution (its module), a ReLU, a max or average pool
(kernel, stride, ceil mode), or a contrast normalisation. :func:`steps` reads them from the network without
changing it; :func:`run_step` runs one forward. A test checks that walking the steps gives exactly the
network's own features, so the geometry here cannot drift from the network's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegram.core.errors import UsageError
from stylegram.nets.vgg import VGG
from stylegram.nets.zfnet import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE, ZFNet

Network = VGG | ZFNet
StepKind = Literal["conv", "relu", "maxpool", "avgpool", "norm"]

# VGG pools 2×2 windows every 2 pixels in ceil mode (see VGG.run_layer); checked by test_vis_layers.
_VGG_POOL = (2, 2)


@dataclass(frozen=True)
class Step:
    name: str
    kind: StepKind
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    conv: nn.Conv2d | None = None

    @property
    def geometry(self) -> tuple[int, int, int]:
        """(kernel, stride, padding) in this layer's input pixels: what receptive fields are built from."""
        return self.kernel, self.stride, self.padding


def steps(net: Network) -> list[Step]:
    """Every layer of ``net`` in execution order."""
    if isinstance(net, VGG):
        return [_vgg_step(net, s.name, s.kind) for s in net.specs]
    if isinstance(net, ZFNet):
        out = []
        for s in net.specs:
            if s.kind == "conv":
                out.append(_conv_step(s.name, net.convs[s.name]))
            elif s.kind == "pool":
                out.append(Step(s.name, "maxpool", s.kernel, s.stride))
            else:
                out.append(Step(s.name, s.kind))
        return out
    raise UsageError(f"visualisations need a VGG or ZFNet, got {type(net).__name__}")


def _vgg_step(net: VGG, name: str, kind: str) -> Step:
    if kind == "conv":
        return _conv_step(name, net.convs[name])
    if kind == "relu":
        return Step(name, "relu")
    return Step(name, "maxpool" if net.pooling == "max" else "avgpool", *_VGG_POOL)


def _conv_step(name: str, conv: nn.Module) -> Step:
    assert isinstance(conv, nn.Conv2d)
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.kernel_size[0] != conv.kernel_size[1]:
        raise UsageError(f"layer {name}: only square, ungrouped, undilated convolutions are supported")
    pad = conv.padding
    assert isinstance(pad, tuple)
    return Step(name, "conv", conv.kernel_size[0], conv.stride[0], int(pad[0]), conv)


def upto(net: Network, layer: str) -> list[Step]:
    """The steps from the input up to and including ``layer`` (an unknown name is a UsageError)."""
    all_steps = steps(net)
    names = [s.name for s in all_steps]
    if layer not in names:
        raise UsageError(f"the network has no layer {layer!r}; layers are {', '.join(names)}")
    return all_steps[: names.index(layer) + 1]


def deepest(net: Network, layers: list[str] | tuple[str, ...]) -> str:
    """The layer among ``layers`` that runs last (each must exist)."""
    names = [s.name for s in steps(net)]
    for n in layers:
        if n not in names:
            raise UsageError(f"the network has no layer {n!r}; layers are {', '.join(names)}")
    return max(layers, key=names.index)


def run_step(step: Step, h: Tensor) -> Tensor:
    """One layer forward (no recording): (B, C, H, W) -> (B, C', H', W')."""
    if step.kind == "conv":
        assert step.conv is not None
        return step.conv(h)  # type: ignore[no-any-return]
    if step.kind == "relu":
        return F.relu(h)
    if step.kind == "maxpool":
        return F.max_pool2d(h, step.kernel, step.stride, step.padding, ceil_mode=True)
    if step.kind == "avgpool":
        return F.avg_pool2d(h, step.kernel, step.stride, step.padding, ceil_mode=True)
    return _lrn(h)


def _lrn(h: Tensor) -> Tensor:
    return F.local_response_norm(h, LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K)


def map_shape(path: list[Step], height: int, width: int) -> tuple[int, int]:
    """(h, w) of the last of ``path``'s maps for a ``height`` × ``width`` input, from the geometry alone."""
    h, w = height, width
    for step in path:
        h, w = _out_size(step, h), _out_size(step, w)
    return h, w


def check_fits(path: list[Step], height: int, width: int) -> None:
    """Refuse an image too small to reach the last of ``path`` (a layer whose map would be empty)."""
    h, w = height, width
    for step in path:
        h, w = _out_size(step, h), _out_size(step, w)
        if h < 1 or w < 1:
            raise UsageError(f"a {width}×{height} image is too small for {path[-1].name}: its maps vanish at "
                             f"{step.name}; use a larger image")


def _out_size(step: Step, n: int) -> int:
    k, s, p = step.geometry
    if step.kind in ("maxpool", "avgpool"):
        # ceil mode, as torch computes it: a last window may hang over the edge but must start inside.
        out = -(-(n + 2 * p - k) // s) + 1
        return out - 1 if (out - 1) * s >= n + p else out
    return (n + 2 * p - k) // s + 1


def channels_of(net: Network, layer: str) -> int:
    """Feature maps in ``layer``'s output."""
    spec = net.spec(layer)
    return int(spec.out_channels)


def device_of(net: nn.Module) -> torch.device:
    for p in net.parameters():
        return p.device
    return torch.device("cpu")
