"""Scoring super-resolution models against bicubic upsampling: the use case behind ``stylegram eval-sr``.

    job = EvalJob(["sr4.safetensors"], data=None, options=EvalOptions())   # None: the held-out photos
    report = job.run(on_step=print)
    report.mean["sr4"].psnr_y, report.mean["bicubic"].psnr_y

Every method sees the same 8-bit low-resolution input of each image (given by the folder, or made by the
training degradation, :mod:`stylegram.feedforward.evalsets`). Bicubic is Pillow's ``BICUBIC`` upsampling of it
(Keys' cubic with a = −0.5, as MATLAB's ``imresize``, so the field's bicubic rows are reproduced); a model runs as
``stylegram upscale`` runs it, histogram matching included unless switched off. Each output is rounded to 8 bits
and scored by :mod:`stylegram.feedforward.metrics` with ``scale`` pixels of border cropped: PSNR and SSIM on Y,
RGB PSNR, and (with ``features``) the distance of VGG16 relu2_2 features, ‖φ(ŷ) − φ(y)‖² / (C·H·W), the
quantity the paper's ℓ_feat model is trained to lower.

The constructor does every check first (options, models, the folder and the size of every file in it, the loss
network); :meth:`EvalJob.run` decodes and scores one image at a time.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from stylegram.core import images
from stylegram.core.device import resolve_device
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.options import Options, option
from stylegram.core.record import describe_file, new_record
from stylegram.feedforward import metrics
from stylegram.feedforward.evalsets import EvalSet, find_set, held_out_set
from stylegram.feedforward.model import FastStyleModel, load_model
from stylegram.feedforward.superres import FEATURE_LAYER
from stylegram.nets.vgg import VGG

BICUBIC = "bicubic"


@dataclass(frozen=True)
class EvalOptions(Options):
    """How to score: the scale, the degradation of folders without low-resolution files, the post-processing."""

    scale: int | None = option(None, "upscaling factor (default: the models'; 4 when only bicubic is scored)",
                               min=2, max=8)
    blur: float = option(1.0, "σ in pixels of the Gaussian blur before bicubic downsampling, for images without a "
                              "given low-resolution file (as in training)", min=0, max=8)
    match_histogram: bool = option(True, "match each model output's histograms to its input's, as upscale does")
    features: bool = option(True, "also measure the VGG16 relu2_2 feature distance (loads the loss network)")
    vgg: str = option("vgg16-caffe", "VGG weights id of the feature distance")


@dataclass(frozen=True)
class Scores:
    """One method on one image, or its mean over the images."""

    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    feature: float | None  # None when features were not measured


@dataclass
class EvalReport:
    """The scores of every method on every image, their means, and how they were made."""

    scale: int
    border: int
    set: str
    layout: str
    degradation: str
    images: list[str]
    methods: list[str]  # bicubic first, then the models in the order given
    per_image: dict[str, list[Scores]] = field(default_factory=dict)
    mean: dict[str, Scores] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; an infinite PSNR (a perfect reconstruction) becomes None."""
        plain: dict[str, Any] = _finite(asdict(self))
        return plain


class EvalJob:
    """A checked evaluation of super-resolution models (and bicubic) on one set of images."""

    def __init__(self, models: Sequence[str | os.PathLike[str]], data: str | os.PathLike[str] | None = None,
                 options: EvalOptions | None = None, *, device: str | torch.device | None = None,
                 vgg: VGG | None = None) -> None:
        self.options = o = options if options is not None else EvalOptions()
        self.device = resolve_device(device)
        self.models: dict[str, FastStyleModel] = {}
        files: dict[str, dict[str, str]] = {}
        for name in models:
            if os.fspath(name) == BICUBIC:
                continue
            model = load_model(name, device=self.device)
            if model.info.task != "superres":
                raise UsageError(f"{os.fspath(name)} is a {model.info.task} model, not a super-resolution one")
            label = _label(Path(name).stem, self.models)
            self.models[label], files[label] = model, describe_file(name)
        self.scale = _scale(o.scale, self.models)
        self.set: EvalSet = held_out_set(self.scale) if data is None else find_set(data, self.scale)
        self.vgg = None
        if o.features:
            if vgg is None:
                from stylegram.weights import load_vgg

                vgg, _ = load_vgg(o.vgg, pooling="max", device=self.device)  # max: the pooling of training
            self.vgg = vgg.to(self.device).freeze()
        self.record = new_record("johnson-superres-eval", self.device, options=o.to_dict(), models=files,
                                 photos=self.set.sources, feature_layer=FEATURE_LAYER if o.features else None)

    @property
    def methods(self) -> list[str]:
        return [BICUBIC, *self.models]

    def run(self, on_step: OnStep | None = None) -> EvalReport:
        """Score every method on every image, one image at a time; ``on_step`` returning True stops early (the
        report then holds the images scored so far)."""
        s, o = self.scale, self.options
        degradation = "given" if self.set.given_lr else f"Gaussian blur σ={o.blur:g}, bicubic ↓{s}, 8-bit"
        report = EvalReport(s, s, self.set.name, self.set.layout, degradation, [], self.methods, record=self.record)
        report.per_image = {m: [] for m in self.methods}
        t0 = time.perf_counter()
        for k, item in enumerate(self.set.images, start=1):
            hr, lr = item.load(s, o.blur)
            outputs = {BICUBIC: bicubic(lr, s), **{m: self._upscale(model, lr) for m, model in self.models.items()}}
            target = self._features(hr)
            for method, sr in outputs.items():
                report.per_image[method].append(self._score(sr, hr, target))
            report.images.append(item.name)
            event = StepEvent(k, len(self.set.images), {m: v[-1].psnr_y for m, v in report.per_image.items()},
                              time.perf_counter() - t0)
            if on_step is not None and on_step(event):
                report.stopped = True
                break
        report.mean = {m: _mean(v) for m, v in report.per_image.items() if v}
        report.elapsed = time.perf_counter() - t0
        return report

    def _upscale(self, model: FastStyleModel, lr: Tensor) -> Tensor:
        return model.stylize_tensor(lr, match_histogram=self.options.match_histogram)

    def _features(self, x: Tensor) -> Tensor | None:
        if self.vgg is None:
            return None
        with torch.no_grad():
            crop = metrics.shave(metrics.levels(x).float() / 255, self.scale).to(self.device)
            found: Tensor = self.vgg(crop, [FEATURE_LAYER])[FEATURE_LAYER]
            return found

    def _score(self, sr: Tensor, hr: Tensor, target: Tensor | None) -> Scores:
        values = {k: float(v[0]) for k, v in metrics.scores(sr.cpu(), hr, self.scale).items()}
        feature = None
        if target is not None:
            mine = self._features(sr)
            assert mine is not None
            feature = float(F.mse_loss(mine, target))
        return Scores(values["psnr_y"], values["ssim_y"], values["psnr_rgb"], feature)


def bicubic(lr: Tensor, scale: int) -> Tensor:
    """Pillow's bicubic ×``scale`` of an 8-bit (1, 3, h, w) image in [0, 1]: the field's baseline (see the module
    docstring); Pillow rounds the result to 8 bits itself."""
    picture = images.to_pil(lr)
    return images.to_tensor(picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.BICUBIC))


def _label(stem: str, taken: dict[str, Any]) -> str:
    """A unique row name for a model: its file stem, numbered when two files share one."""
    if stem not in taken and stem != BICUBIC:
        return stem
    n = 2
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def _scale(asked: int | None, models: dict[str, FastStyleModel]) -> int:
    scales = sorted({m.scale for m in models.values()})
    if len(scales) > 1:
        raise UsageError(f"the models have different scales ({', '.join(f'×{s}' for s in scales)}): score them "
                         "separately")
    if asked is not None and scales and asked != scales[0]:
        raise UsageError(f"--scale {asked} does not match the model's ×{scales[0]}")
    return asked if asked is not None else (scales[0] if scales else 4)


def _mean(values: list[Scores]) -> Scores:
    def avg(xs: list[float]) -> float:
        return math.fsum(xs) / len(xs)

    features = [v.feature for v in values if v.feature is not None]
    return Scores(avg([v.psnr_y for v in values]), avg([v.ssim_y for v in values]),
                  avg([v.psnr_rgb for v in values]), avg(features) if len(features) == len(values) else None)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
