"""VGG networks (Simonyan & Zisserman) as named-layer feature extractors and ImageNet classifiers.

The architecture is data: each configuration lists output channels per 3×3 convolution and "M" for a
2×2 pooling. Layers are named as in the Caffe model zoo and the style transfer literature
(``conv1_1, relu1_1, …, pool5``), never by index.

Every public entry point takes RGB float tensors in [0, 1] of shape (B, 3, H, W). Each network owns its
input normalisation (:class:`Normalization`), chosen by the weights it was loaded with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegram.core.errors import UsageError
from stylegram.nets.layered import NamedLayerNet

Pooling = Literal["avg", "max"]

CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# Classifier head: fc6 (25088 -> 4096), fc7 (4096 -> 4096), fc8 (4096 -> 1000), as in Caffe and torchvision.
CLASSIFIER_LAYERS = ("fc6", "fc7", "fc8")


@dataclass(frozen=True)
class LayerSpec:
    """One named layer: ``kind`` is "conv", "relu" or "pool"; channels are the layer's output channels."""

    name: str
    kind: Literal["conv", "relu", "pool"]
    in_channels: int
    out_channels: int
    scale: int  # spatial downsampling factor of this layer's output relative to the input


def layer_specs(arch: str) -> list[LayerSpec]:
    """The named layers of ``arch`` in execution order."""
    if arch not in CONFIGS:
        raise UsageError(f"unknown VGG architecture {arch!r}; choose one of {', '.join(CONFIGS)}")
    specs: list[LayerSpec] = []
    block, index, channels, scale = 1, 1, 3, 1
    for item in CONFIGS[arch]:
        if item == "M":
            scale *= 2
            specs.append(LayerSpec(f"pool{block}", "pool", channels, channels, scale))
            block, index = block + 1, 1
        else:
            out = int(item)
            specs.append(LayerSpec(f"conv{block}_{index}", "conv", channels, out, scale))
            specs.append(LayerSpec(f"relu{block}_{index}", "relu", out, out, scale))
            channels, index = out, index + 1
    return specs


def layer_names(arch: str) -> list[str]:
    """Names of every layer of ``arch`` in execution order (``conv1_1, relu1_1, …, pool5``)."""
    return [s.name for s in layer_specs(arch)]


class Normalization(nn.Module):
    """Maps RGB [0, 1] images to what a set of weights was trained on.

    ``caffe``: BGR channel order, 0–255 range, per-channel ImageNet mean subtracted (the original VGG release,
    and the weights behind ``vgg16-caffe``). ``torchvision``: RGB, (x - mean) / std.
    """

    CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
    TORCHVISION_MEAN = (0.485, 0.456, 0.406)
    TORCHVISION_STD = (0.229, 0.224, 0.225)

    def __init__(self, kind: Literal["caffe", "torchvision"]) -> None:
        super().__init__()
        self.kind = kind
        if kind == "caffe":
            # y_bgr = 255 * x_bgr - mean: folded into one scale and shift after the channel flip.
            scale = torch.full((3,), 255.0)
            shift = -torch.tensor(self.CAFFE_MEAN_BGR)
        elif kind == "torchvision":
            std = torch.tensor(self.TORCHVISION_STD)
            scale = 1.0 / std
            shift = -torch.tensor(self.TORCHVISION_MEAN) / std
        else:
            raise ValueError(f"unknown normalisation {kind!r}")
        self.scale: Tensor
        self.shift: Tensor
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch of shape (B, 3, H, W), got {tuple(x.shape)}")
        if self.kind == "caffe":
            x = x.flip(1)  # RGB -> BGR; flip returns a new tensor, the caller's is untouched
        return x * self.scale + self.shift


class VGG(NamedLayerNet):
    """A VGG network whose forward pass returns the named feature maps asked for.

    ``pooling="avg"`` replaces max pooling by average pooling, which Gatys et al. found gives smoother
    gradients and better images for synthesis; classification uses max pooling as trained.
    The network runs only up to the deepest layer requested.
    """

    normalize: Normalization

    def __init__(
        self,
        arch: str = "vgg16",
        *,
        normalization: Literal["caffe", "torchvision"] = "caffe",
        pooling: Pooling = "max",
        classifier: bool = False,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if pooling not in ("avg", "max"):
            raise UsageError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        self.arch = arch
        self.pooling: Pooling = pooling
        self.specs = layer_specs(arch)
        self.normalize = Normalization(normalization)
        # ReLUs and pools are applied functionally (never in place), so only convolutions hold parameters.
        self.convs = nn.ModuleDict(
            {s.name: nn.Conv2d(s.in_channels, s.out_channels, 3, padding=1) for s in self.specs if s.kind == "conv"}
        )
        self.classifier: nn.ModuleDict | None = None
        if classifier:
            self.classifier = nn.ModuleDict(
                {
                    "fc6": nn.Linear(512 * 7 * 7, 4096),
                    "fc7": nn.Linear(4096, 4096),
                    "fc8": nn.Linear(4096, num_classes),
                }
            )
        self.title = arch
        self.index_layers()

    def spec(self, name: str) -> LayerSpec:
        return self.specs[self.layer_index(name)]  # type: ignore[no-any-return]

    def feature_shape(self, name: str, height: int, width: int) -> tuple[int, int]:
        """(h, w) of layer ``name``'s maps for a ``height`` × ``width`` input (ceil-mode pooling keeps odd edges)."""
        scale = self.spec(name).scale
        return -(-height // scale), -(-width // scale)

    def run_layer(self, spec: LayerSpec, h: Tensor) -> Tensor:
        if spec.kind == "conv":
            return self.convs[spec.name](h)  # type: ignore[no-any-return]
        if spec.kind == "relu":
            return F.relu(h)
        # ceil_mode keeps the last row/column of odd-sized maps instead of dropping it.
        if self.pooling == "avg":
            return F.avg_pool2d(h, 2, ceil_mode=True)
        return F.max_pool2d(h, 2, ceil_mode=True)

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits (B, 1000) for RGB images in [0, 1], ideally 224×224."""
        if self.classifier is None:
            raise RuntimeError("these VGG weights have no classifier (fc6–fc8); load torchvision's vgg16 or vgg19")
        return self.head(self.forward(x, ["pool5"])["pool5"])

    def head(self, pool5: Tensor) -> Tensor:
        """The classifier (fc6–fc8) on pool5's output (B, 512, h, w): logits (B, classes)."""
        if self.classifier is None:
            raise RuntimeError("these VGG weights have no classifier (fc6–fc8); load torchvision's vgg16 or vgg19")
        # Like torchvision, pool to 7×7 so that any input size reaches fc6 with 25088 features.
        h = F.adaptive_avg_pool2d(pool5, (7, 7)).flatten(1)
        c = self.classifier
        h = F.relu(c["fc6"](h))
        h = F.relu(c["fc7"](h))
        return c["fc8"](h)  # type: ignore[no-any-return]


def deepest(layers: Sequence[str], arch: str = "vgg16") -> str:
    """The layer among ``layers`` that comes last in ``arch``."""
    order = {n: i for i, n in enumerate(layer_names(arch))}
    for n in layers:
        if n not in order:
            raise UsageError(f"{arch} has no layer {n!r}")
    return max(layers, key=lambda n: order[n])
