"""Training a Johnson et al. (2016) transform network for one style, on any folder of photos.

Each iteration takes a batch of random square crops of the photos, stylises them with the transform network and
minimises a perceptual loss measured by a frozen VGG16:

    L = λ_c · Σ_content-layers ‖φ(y) − φ(x)‖² / (C·H·W)
      + λ_s · Σ_style-layers ‖G(φ(y)) − G(φ(s))‖²_F,  G = F Fᵀ / (C·H·W)
      + λ_tv · TV(y)

averaged over the batch, as in the paper's equations 2 and 3 (features of the 0–255 Caffe-normalised input).
Departures from the paper: the crops are random crops of the photos rather than 256×256 resizes of COCO, and the
loss is written with the pure functions of :mod:`stylegram.losses` (a comment in :func:`perceptual_loss` shows
the conversion).

The loop itself (checkpoints, log, previews, resume, data parallelism) is :func:`stylegram.feedforward.loop.fit`,
shared with super-resolution; this module is the style task: its options, its loss and its model record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stylegram.core import images
from stylegram.core.device import resolve_device
from stylegram.core.events import OnStep
from stylegram.core.options import option
from stylegram.feedforward.data import TrainingImages
from stylegram.feedforward.loop import LoopOptions, TrainError, TrainResult, fit
from stylegram.feedforward.model import ModelInfo
from stylegram.losses import functional as losses
from stylegram.nets.transformer import TransformerNet
from stylegram.nets.vgg import VGG, layer_names

JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
JOHNSON_CONTENT_LAYERS = ("relu2_2",)
STYLE_TERMS = ("content", "style", "tv")
LOG_COLUMNS = ("iteration", *STYLE_TERMS, "total", "seconds")

__all__ = ["JOHNSON_CONTENT_LAYERS", "JOHNSON_STYLE_LAYERS", "LOG_COLUMNS", "LossTargets", "StyleTask", "TrainError",
           "TrainOptions", "TrainResult", "perceptual_loss", "style_targets", "train"]


@dataclass(frozen=True)
class TrainOptions(LoopOptions):
    """Every option of training a style network, with its default, help text and bounds."""

    style: str = option("", "the style image (painting)")
    iterations: int = option(40000, "training iterations (batches); the paper's 2 epochs of COCO are 40000", min=1)
    style_size: int = option(512, "longest side of the style image, in pixels", min=16, max=8192)
    content_weight: float = option(1.0, "λ_c: weight of the content (feature reconstruction) loss", min=0)
    # Defaults from a sweep (1000 iterations, batch 4, 256 px, on skimage photos): λ_s = 3e-5 keeps the photo
    # nearly intact, 1e-4 gives a clear style with recognisable content, 3e-4 and above wash the content out.
    # λ_tv = 0.5 is Johnson's 1e-5 for 0–255 pixels rescaled to [0, 1] pixels (×255² ≈ 0.65), a gentle prior.
    style_weight: float = option(1e-4, "λ_s: weight of the style (Gram) loss; higher = more style", min=0)
    tv_weight: float = option(0.5, "λ_tv: weight of the total-variation smoothness term", min=0)
    content_layers: tuple[str, ...] = option(JOHNSON_CONTENT_LAYERS, "VGG16 layers for the content loss")
    style_layers: tuple[str, ...] = option(JOHNSON_STYLE_LAYERS, "VGG16 layers for the style loss")
    previews: int = option(4, "validation photos stylised into the preview at each checkpoint", min=0, max=64)
    # The fields above the style ones (data, output, batch_size, image_size, lr, …) come from LoopOptions.

    def problems(self) -> Iterator[str]:
        known = set(layer_names("vgg16"))
        for layer in (*self.content_layers, *self.style_layers):
            if layer not in known:
                yield f"VGG16 has no layer {layer!r}"
        if not self.style_layers and not self.content_layers:
            yield "need at least one content or style layer"


# --------------------------------------------------------------------------------------------- the loss


@dataclass(frozen=True)
class LossTargets:
    style_grams: dict[str, Tensor]  # layer -> (1, C, C) Gram of the style image, normalised by H·W


def style_targets(vgg: VGG, style: Tensor, layers: Sequence[str]) -> LossTargets:
    """Gram matrices of the style image (1, 3, h, w) at ``layers``."""
    with torch.no_grad():
        feats = vgg(style, layers)
        return LossTargets({k: losses.gram_matrix(feats[k]) for k in layers})


def perceptual_loss(vgg: VGG, y: Tensor, x: Tensor, targets: LossTargets, o: TrainOptions) -> dict[str, Tensor]:
    """The weighted terms and their sum for stylised ``y`` and photos ``x``, both (B, 3, H, W); batch means.

    In terms of :mod:`stylegram.losses`: content_loss is ½‖F − P‖², so the paper's ‖F − P‖²/(CHW) is
    2·content_loss/numel; gram_matrix divides by M = H·W and style_layer_loss by 4C², so the paper's
    ‖G/(CHW) − A/(CHW)‖² = ‖Ĝ − Â‖²/C² is 4·style_layer_loss. Sums over the batch are divided by B.
    """
    b = y.shape[0]
    layers = list(dict.fromkeys((*o.content_layers, *o.style_layers)))
    fy = vgg(y, layers)
    zero = y.new_zeros(())
    content = zero
    if o.content_layers:
        with torch.no_grad():
            fx = vgg(x, o.content_layers)
        for layer in o.content_layers:
            content = content + 2.0 * losses.content_loss(fy[layer], fx[layer]) / fy[layer].numel()
    style = zero
    for layer in o.style_layers:
        style = style + 4.0 * losses.style_layer_loss(losses.gram_matrix(fy[layer]), targets.style_grams[layer]) / b
    tv = losses.total_variation(y) / b if o.tv_weight else zero
    terms = {"content": o.content_weight * content, "style": o.style_weight * style, "tv": o.tv_weight * tv}
    terms["total"] = terms["content"] + terms["style"] + terms["tv"]
    return terms


# --------------------------------------------------------------------------------------------- the task


def train(options: TrainOptions, on_step: OnStep | None = None, *, vgg: VGG | None = None,
          device: torch.device | str | None = None) -> TrainResult:
    """Train a transform network on ``options.data`` for the style ``options.style``; write it to
    ``options.output`` (rank 0), with checkpoints, a CSV log and previews in ``options.workdir``.

    ``vgg`` replaces the loss network that ``options.model`` names (tests pass a random one). When
    ``torch.distributed`` is initialised, this process is one rank of a data-parallel run.
    """
    dev = resolve_device(device)
    if not options.style:
        raise TrainError("no style image given")
    if not os.path.isfile(options.style):
        raise TrainError(f"style image not found: {options.style}")
    return fit(StyleTask(options), options, on_step, vgg, dev, inputs=[options.style])


class StyleTask:
    """Style training: the network's input and target are the photo itself; the loss is :func:`perceptual_loss`."""

    method: str = "johnson"
    terms: tuple[str, ...] = STYLE_TERMS
    needs_vgg: bool = True

    def __init__(self, options: TrainOptions) -> None:
        self.o = options
        self.targets: LossTargets | None = None

    def photos(self) -> TrainingImages:
        return TrainingImages(self.o.data, self.o.image_size)

    def network(self) -> nn.Module:
        return TransformerNet(self.o.width)

    def prepare(self, vgg: VGG | None, device: torch.device) -> None:
        assert vgg is not None, "the style loss needs the loss network"
        style = images.to_tensor(images.resize_longest(images.load_image(self.o.style), self.o.style_size))
        self.targets = style_targets(vgg, style.to(device), self.o.style_layers)

    def pairs(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        return crops, crops

    def loss(self, vgg: VGG | None, y: Tensor, x: Tensor, target: Tensor) -> dict[str, Tensor]:
        assert vgg is not None and self.targets is not None, "prepare() first"
        return perceptual_loss(vgg, y, x, self.targets, self.o)

    def info(self, net: nn.Module, iterations: int, losses: dict[str, float], photos: TrainingImages) -> ModelInfo:
        from stylegram import __version__

        o = self.o
        return ModelInfo(
            width=o.width, style_image=os.path.basename(o.style), style_size=o.style_size,
            content_weight=o.content_weight, style_weight=o.style_weight, tv_weight=o.tv_weight,
            vgg_weights=o.model, iterations=iterations, stylegram_version=__version__,
            extra={"options": o.to_dict(), "losses": losses, "photos": photos.readable, "skipped": photos.skipped,
                   "torch": torch.__version__},
        )
