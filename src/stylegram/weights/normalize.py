"""The normalised VGG16 of Gatys et al.: every filter's mean activation over images and positions set to 1.

The paper: "We normalized the network by scaling the weights such that the mean activation of each
convolutional filter over images and positions is equal to one. Such re-scaling can be done for the VGG
network without changing its output, because it contains only rectifying linear activation functions and no
normalization or pooling over feature maps." Its α/β ratios (1e-3, 1e-4) assume this network: the raw Caffe
VGG16's activations differ by orders of magnitude between layers, which shifts both the content/style balance
and the weight of each style layer.

How (one forward pass, then arithmetic): let m_l (C_l,) be the mean of relu_l over the calibration images and
positions in the *original* network. Dividing conv_l's weights and bias by m_l divides relu_l by m_l, since
ReLU(x/m) = ReLU(x)/m for m > 0 and both poolings commute with a positive per-channel scale. conv_{l+1} now
receives its input divided by m_l per input channel, so multiplying its weights by m_l along the input axis
restores its pre-scaling response exactly; hence each layer's means are those of the original network and the
scales can all be taken from one pass. Result: relu_l(normalised) = relu_l(original) / m_l for every l (with m_l
floored, see below).

Departures, stated: the paper does not say which images or pooling it calibrated with. We use colour photos
from ``skimage.data`` (centre-cropped to 224×224, ImageNet style) and the network as trained (max pooling);
with average pooling the deeper means come out somewhat below 1.

Second departure, a floor: each filter is scaled by max(m_l, MEAN_FLOOR · median of its layer's m_l), not by
m_l itself. A few filters hardly ever fire on photos: relu2_1's filter 123 has mean 0.25 on the six photos
against a layer median of 204, and is exactly 0 on 15 of 18 offline skimage photos. Plain division amplifies
such a filter ~800× relative to its layer's median one, its Gram terms ~800²× and their squared differences
~800⁴×; a style image that does fire it (the project's generated painting: mean 12 there) then puts all of
relu2_1's style loss, and 98% of the whole style loss from a white-noise start, on that one filter, so the
optimiser paints its colour in blobs and leaves the other layers' style alone (relu3_1…relu5_1 losses stay at
86–121% of their noise-start values after 150 L-BFGS evaluations at 128 px, at α/β = 1e-4, 1e-3 and 1e-2).
More calibration images do not help: with 72 crops of 18 skimage photos that filter's mean falls to 0.03 and
it dominates even more. With MEAN_FLOOR = 0.1 (25 of the 4224 filters reach it, 17 of them in relu5_3) that
filter's share of relu2_1's style loss at the noise start falls from 100% to 1%; every other filter's mean is
exactly 1, and the network still computes the same function up to positive per-channel scales. A filter keeps
its scale only where its whole layer is dead (median ≈ 0), rather than being blown up by a division by ~0.

What neither calibration does: put the balance at the paper's α/β. With this network (chelsea content, the
generated painting as style, all five style layers, white noise, 128 px) 1e-6 gives texture with a faint
layout, 1e-5 the balance and 1e-4 already mostly the photo; 1e-3 is almost the photo. The content loss
½Σ(F − P)² sums over positions while E_l does not grow with the image, so the balance also moves with size
(doubling the side multiplies the noise-start content loss by 3.9 and leaves the style loss alike).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from stylegram.core import images
from stylegram.nets.vgg import VGG, Pooling
from stylegram.weights import WeightsError, WeightsInfo, cache_dir, load_vgg

NORMALIZED_ID = "vgg16-caffe-normalized"
BASE_ID = "vgg16-caffe"
FILENAME = f"{NORMALIZED_ID}.safetensors"
CALIBRATION_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
CALIBRATION_SIZE = 224
CALIBRATION_POOLING: Pooling = "max"
DEAD_FILTER = 1e-6  # scales below this are treated as a filter that never fires: it keeps its scale
MEAN_FLOOR = 0.1  # a filter is scaled by at least this fraction of its layer's median mean (see the docstring)
_FORMAT = 2  # bump when the calibration procedure changes, so cached files are rebuilt
_META_KEY = "stylegram"  # the metadata entry weights.load_vgg reads the normalisation from


def calibration_images(names: Sequence[str] = CALIBRATION_IMAGES, size: int = CALIBRATION_SIZE) -> list[Tensor]:
    """``skimage.data`` colour photos, centre-cropped square and resized to ``size``: each (1, 3, size, size)."""
    from PIL import Image
    from skimage import data  # imported here: scikit-image is slow to import and only calibration needs it

    out = []
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            raise ValueError(f"skimage.data has no image {name!r}")
        img = Image.fromarray(loader()).convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        square = img.crop((left, top, left + side, top + side))
        out.append(images.to_tensor(images.resize_to(square, (size, size))))
    return out


def relu_means(vgg: VGG, batch: Sequence[Tensor]) -> dict[str, Tensor]:
    """Mean of every relu layer's response per channel, (C,), over all images and positions."""
    relus = [s.name for s in vgg.specs if s.kind == "relu"]
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = dict.fromkeys(relus, 0)
    with torch.no_grad():
        for x in batch:
            for name, f in vgg(x.to(next(vgg.parameters()).device), relus).items():  # f: (B, C, H, W)
                s = f.double().sum(dim=(0, 2, 3))
                sums[name] = sums[name] + s if name in sums else s
                counts[name] += f.shape[0] * f.shape[2] * f.shape[3]
    return {name: (sums[name] / counts[name]).float().cpu() for name in relus}


def filter_scales(means: dict[str, Tensor], floor: float = MEAN_FLOOR) -> dict[str, Tensor]:
    """The divisor of each filter: its mean, floored at ``floor`` × its layer's median; 1 where that is ~0."""
    out = {}
    for name, m in means.items():
        s = torch.maximum(m, floor * m.median())
        out[name] = torch.where(s > DEAD_FILTER, s, torch.ones_like(s))
    return out


def normalized_state(vgg: VGG, means: dict[str, Tensor], floor: float = MEAN_FLOOR) -> dict[str, Tensor]:
    """``vgg``'s convolutions rescaled so that relu_l becomes relu_l / s_l, s_l = :func:`filter_scales`."""
    scales = filter_scales(means, floor)
    state: dict[str, Tensor] = {}
    previous: Tensor | None = None  # (C_in,) scale the input of the next conv was divided by
    for spec in (s for s in vgg.specs if s.kind == "conv"):
        conv = vgg.convs[spec.name]
        assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None  # VGG builds them so; narrows types
        m = scales["relu" + spec.name.removeprefix("conv")]
        weight = conv.weight.detach().cpu().double()  # (C_out, C_in, 3, 3)
        if previous is not None:
            weight = weight * previous.double()[None, :, None, None]
        state[f"convs.{spec.name}.weight"] = (weight / m.double()[:, None, None, None]).float().contiguous()
        state[f"convs.{spec.name}.bias"] = (conv.bias.detach().cpu().double() / m.double()).float().contiguous()
        previous = m
    return state


def normalize_vgg(vgg: VGG, batch: Sequence[Tensor], floor: float = MEAN_FLOOR) -> VGG:
    """A normalised copy of ``vgg`` (same architecture, normalisation and pooling), calibrated on ``batch``."""
    state = normalized_state(vgg, relu_means(vgg, batch), floor)
    out = VGG(vgg.arch, normalization=vgg.normalize.kind, pooling=vgg.pooling)
    out.load_state_dict(state, strict=True)
    return out.to(next(vgg.parameters()).device).freeze()


def _wanted_meta(base: WeightsInfo) -> dict[str, object]:
    return {"source": NORMALIZED_ID, "base": base.source, "base_sha256": base.sha256, "arch": base.arch,
            "normalization": base.normalization, "calibration_images": [f"skimage.data.{n}" for n in
                                                                       CALIBRATION_IMAGES],
            "calibration_size": CALIBRATION_SIZE, "calibration_pooling": CALIBRATION_POOLING, "mean_floor": MEAN_FLOOR,
            "format": _FORMAT}


def _recorded_meta(file: Path) -> dict[str, object] | None:
    try:
        with safetensors.safe_open(str(file), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(_META_KEY, "{}"))
    except Exception:  # SafetensorError, JSONDecodeError, OSError: all mean "rebuild it"
        return None
    return meta if isinstance(meta, dict) else None


def ensure_normalized(*, rebuild: bool = False) -> Path:
    """``<cache>/vgg16-caffe-normalized.safetensors``, calibrated from ``vgg16-caffe`` first if missing or stale.

    The file records the base weights' sha256 and the calibration settings; a mismatch means it is rebuilt.
    It is written atomically: concurrent builders each replace it with the same complete file.
    """
    base, info = load_vgg(BASE_ID, pooling=CALIBRATION_POOLING, classifier=False)
    target = cache_dir() / FILENAME
    wanted = _wanted_meta(info)
    if not rebuild and target.is_file():
        recorded = _recorded_meta(target)
        if recorded is not None and all(recorded.get(k) == v for k, v in wanted.items()):
            return target
    means = relu_means(base, calibration_images())
    state = normalized_state(base, means)
    floored = {k: int((v < MEAN_FLOOR * v.median()).sum()) for k, v in means.items()}
    meta = {**wanted, "relu_means_before": {k: round(float(v.mean()), 6) for k, v in means.items()},
            "floored_filters": {k: n for k, n in floored.items() if n}}
    data = safetensors.torch.save(state, metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    try:
        images.atomic_write_bytes(target, data)
    except OSError as exc:
        raise WeightsError(f"cannot write {target} ({exc}); set STYLEGRAM_CACHE elsewhere") from exc
    return target


def load_normalized_vgg(
    pooling: Pooling = "avg", *, device: torch.device | str | None = None, rebuild: bool = False
) -> tuple[VGG, WeightsInfo]:
    """The normalised VGG16 (built and cached on first use, about a second of compute) and its record."""
    file = ensure_normalized(rebuild=rebuild)
    vgg, info = load_vgg(BASE_ID, path=os.fspath(file), pooling=pooling, classifier=False, device=device)
    return vgg, dataclasses.replace(info, source=NORMALIZED_ID)
