"""Super-resolution with perceptual losses (Johnson et al. 2016, section 4.2): the degradation, the losses, the
paper's histogram-matching post-processing, and the training task for :func:`stylegram.feedforward.loop.fit`.

Training pairs are made on the fly from high-resolution crops y (B, 3, S, S): the low-resolution input is
x = bicubic↓s(G_σ * y), a Gaussian blur of σ = 1 pixel followed by bicubic downsampling by the scale s, as in the
paper. The network maps x back to (B, 3, S, S) and is trained on

    feature:  ℓ_feat = ‖φ_j(ŷ) − φ_j(y)‖² / (C_j H_j W_j),  φ_j = VGG16 relu2_2      (the paper's choice)
    pixel:    ℓ_pixel = ‖ŷ − y‖² / (C H W)
    + λ_tv · TV(ŷ)  (optional)

averaged over the batch. Departures from the paper: the crops are random crops (and mirror images) of any folder of
photos at their own resolution rather than 288×288 patches of 10k COCO images; bicubic downsampling is PyTorch's
(Keys' a = −0.75, no antialiasing: the blur before it does that job).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegram.core.device import resolve_device
from stylegram.core.events import OnStep
from stylegram.core.options import option
from stylegram.feedforward.architectures import SUPERRES_ARCHITECTURES
from stylegram.feedforward.data import TrainingImages
from stylegram.feedforward.imaging import degrade
from stylegram.feedforward.loop import LoopOptions, TrainResult, fit
from stylegram.feedforward.model import ModelInfo
from stylegram.losses import functional as losses
from stylegram.nets import superres as nets
from stylegram.nets.vgg import VGG, layer_names

FEATURE_LAYER = "relu2_2"


# ---------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class SuperResOptions(LoopOptions):
    """Every option of training a super-resolution network, with its default, help text and bounds."""

    iterations: int = option(200000, "training iterations (batches); the paper's run is 200000", min=1)
    image_size: int = option(288, "side of the square high-resolution crops (the paper's 288), a multiple of "
                                  "--scale", min=16, max=8192)
    scale: int = option(4, "upscaling factor: 4 or 8 (2 also works)", min=2, max=8)
    loss: Literal["feature", "pixel"] = option(
        "feature", "feature: squared error of VGG16 relu2_2 features (l_feat); pixel: per-pixel squared error")
    upsample: Literal["transposed", "nearest"] = option(
        "transposed", "×2 layers: transposed (the paper's stride-1/2 convolutions) or nearest (upsample + conv)")
    # Not in the paper: its first Adam steps (each weight moves by about --lr, whatever its gradient) push the
    # zero-initialised last layer's 81·C weights the same way at once, and the output leaves bicubic by more than
    # a grey level per pixel: measured on the bundled photos (width 0.5, 96 px, batch 8), the loss is 11× bicubic's
    # over the first 20 iterations and still 6 % above it after 80; with a 300-iteration warm-up it stays within
    # 1.2 % of bicubic's and is below it from iteration 60 on.
    warmup: int = option(300, "iterations over which the learning rate rises linearly from 0 to --lr (0: none, "
                              "as in the paper)", min=0)
    blocks: int = option(nets.RESIDUAL_BLOCKS, "residual blocks (the paper: 4)", min=1, max=16)
    blur: float = option(1.0, "σ in pixels of the Gaussian blur before the bicubic downsampling", min=0, max=8)
    tv_weight: float = option(0.0, "λ_tv: weight of the total-variation term (0 = off)", min=0)
    feature_layer: str = option(FEATURE_LAYER, "VGG16 layer of the feature loss")
    previews: int = option(4, "validation crops super-resolved into the preview at each checkpoint", min=0, max=64)

    def problems(self) -> Iterator[str]:
        if self.scale not in nets.SCALES:
            yield f"scale must be one of {', '.join(map(str, nets.SCALES))}, got {self.scale}"
        elif self.image_size % self.scale or self.image_size // self.scale < nets.MIN_SIDE:
            yield (f"image-size must be a multiple of the scale {self.scale} and at least {nets.MIN_SIDE * self.scale},"
                   f" got {self.image_size}")
        if self.feature_layer not in layer_names("vgg16"):
            yield f"VGG16 has no layer {self.feature_layer!r}"


def train_superres(options: SuperResOptions, on_step: OnStep | None = None, *, vgg: VGG | None = None,
                   device: torch.device | str | None = None) -> TrainResult:
    """Train a super-resolution network on ``options.data``; write it to ``options.output`` (see
    :func:`stylegram.feedforward.loop.fit` for the files, resume and data parallelism)."""
    return fit(SuperResTask(options), options, on_step, vgg, resolve_device(device))


class SuperResTask:
    """Super-resolution training: input = degraded crop, target = the crop; loss ℓ_feat or ℓ_pixel (+ TV)."""

    method: str = "johnson-superres"

    def __init__(self, options: SuperResOptions) -> None:
        self.o = options
        self.terms: tuple[str, ...] = (options.loss, "tv")
        self.needs_vgg: bool = options.loss == "feature"

    def photos(self) -> TrainingImages:
        return TrainingImages(self.o.data, self.o.image_size, native=True, flips=True)

    def network(self) -> nn.Module:
        o = self.o
        return nets.SuperResNet(o.scale, o.width, o.blocks, o.upsample)

    def prepare(self, vgg: VGG | None, device: torch.device) -> None:
        return None

    def pairs(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        return degrade(crops, self.o.scale, self.o.blur), crops

    def loss(self, vgg: VGG | None, y: Tensor, x: Tensor, target: Tensor) -> dict[str, Tensor]:
        o = self.o
        if o.loss == "feature":
            assert vgg is not None, "the feature loss needs the loss network"
            with torch.no_grad():
                wanted = vgg(target, [o.feature_layer])[o.feature_layer]
            main = F.mse_loss(vgg(y, [o.feature_layer])[o.feature_layer], wanted)
        else:
            main = F.mse_loss(y, target)
        tv = o.tv_weight * losses.total_variation(y) / y.shape[0] if o.tv_weight else y.new_zeros(())
        return {o.loss: main, "tv": tv, "total": main + tv}

    def info(self, net: nn.Module, iterations: int, losses: dict[str, float], photos: TrainingImages) -> ModelInfo:
        from stylegram import __version__

        o = self.o
        return ModelInfo(
            width=o.width, architecture=SUPERRES_ARCHITECTURES[o.upsample], scale=o.scale, blocks=o.blocks,
            tv_weight=o.tv_weight, vgg_weights=o.model if o.loss == "feature" else "", iterations=iterations,
            stylegram_version=__version__,
            extra={"loss": o.loss, "options": o.to_dict(), "losses": losses, "photos": photos.readable,
                   "skipped": photos.skipped, "data": os.path.basename(os.path.normpath(o.data)) if o.data else "",
                   "torch": torch.__version__},
        )
