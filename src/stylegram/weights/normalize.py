"""The normalised VGG16 of Gatys et al.: every filter's mean activation over images and positions set to 1.

A source derived from ``vgg16-caffe`` (:data:`NORMALIZED`): calibrated once, cached as
``<cache>/vgg16-caffe-normalized.safetensors`` with the calibration it came from, and rebuilt when that no longer
matches. Built on :mod:`stylegram.weights.sources`; :mod:`stylegram.weights.registry` offers it next to the base
sources.

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
from collections.abc import Sequence
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from stylegram.core import images
from stylegram.core.atomic import atomic_write_bytes
from stylegram.core.device import resolve_device
from stylegram.nets.vgg import VGG, Pooling
from stylegram.weights.cache import cache_dir, cached_sha256
from stylegram.weights.format import META_KEY, WeightsError, first_line, recorded_meta, tensors_digest
from stylegram.weights.sources import (
    SOURCES,
    DerivedSource,
    SourceStatus,
    VerifyResult,
    VerifyStatus,
    WeightsInfo,
    load_file,
    load_source,
)

NORMALIZED_ID = "vgg16-caffe-normalized"
BASE_ID = "vgg16-caffe"
FILENAME = f"{NORMALIZED_ID}.safetensors"
CALIBRATION_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
CALIBRATION_SIZE = 224
CALIBRATION_POOLING: Pooling = "max"
DEAD_FILTER = 1e-6  # scales below this are treated as a filter that never fires: it keeps its scale
MEAN_FLOOR = 0.1  # a filter is scaled by at least this fraction of its layer's median mean (see the docstring)
_FORMAT = 3  # bump when the calibration or the record changes, so cached files are rebuilt (3: tensors_sha256)
DESCRIPTION = f"{BASE_ID} rescaled to mean activation 1 per filter (the paper's normalised VGG16)"


def calibration_images(names: Sequence[str] = CALIBRATION_IMAGES, size: int = CALIBRATION_SIZE) -> list[Tensor]:
    """``skimage.data`` colour photos, centre-cropped square and resized to ``size``: each (1, 3, size, size)."""
    from PIL import Image
    from skimage import data  # imported here: scikit-image is slow to import and only calibration needs it

    out = []
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            raise WeightsError(f"skimage.data has no image {name!r}")
        try:
            img = Image.fromarray(loader()).convert("RGB")
        except Exception as exc:  # a damaged scikit-image install, or an image it would have to download
            raise WeightsError(f"cannot read calibration image skimage.data.{name} ({first_line(exc)})") from exc
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


# ---------------------------------------------------------------------------------- the cached file


def calibration_settings() -> dict[str, object]:
    """What the calibration depends on besides the base weights; recorded in the file and compared on use."""
    return {"source": NORMALIZED_ID, "base": BASE_ID, "arch": SOURCES[BASE_ID].arch,
            "normalization": SOURCES[BASE_ID].normalization,
            "calibration_images": [f"skimage.data.{n}" for n in CALIBRATION_IMAGES],
            "calibration_size": CALIBRATION_SIZE, "calibration_pooling": CALIBRATION_POOLING, "mean_floor": MEAN_FLOOR,
            "format": _FORMAT}


def _file_problem(file: Path, base_sha256: str | None, *, full: bool) -> tuple[VerifyStatus, str] | None:
    """Why the cached file is not the current normalised network, or None. Cheap: its recorded calibration
    against :func:`calibration_settings` and ``base_sha256`` (when known); ``full`` also re-hashes every tensor."""
    meta = recorded_meta(file)
    if meta is None or meta.get("source") != NORMALIZED_ID:
        return "corrupt", "unreadable, or not a normalised VGG16"
    if base_sha256 is not None and meta.get("base_sha256") != base_sha256:
        return "stale", f"calibrated from other {BASE_ID} weights"
    if any(meta.get(k) != v for k, v in calibration_settings().items()):
        return "stale", "calibrated with other settings or by another version"
    if full:
        try:
            with safetensors.safe_open(str(file), "pt") as handle:
                state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
        except Exception as exc:  # SafetensorError, OSError: a damaged file
            return "corrupt", f"unreadable ({first_line(exc)})"
        if tensors_digest(state) != meta.get("tensors_sha256"):
            return "corrupt", "tensor data differs from what was recorded at calibration"
    return None


def _base_sha256() -> str | None:
    """The converted base file's sha256, or None before it is converted (the conversion is deterministic)."""
    base_file = cache_dir() / SOURCES[BASE_ID].filename
    return cached_sha256(base_file) if base_file.is_file() else None


def ensure_normalized(*, rebuild: bool = False, allow_download: bool = True) -> Path:
    """``<cache>/vgg16-caffe-normalized.safetensors``, calibrated from ``vgg16-caffe`` first if missing or stale.

    The file records the base weights' sha256, the calibration settings and its tensors' digest; a mismatch
    with the first two means it is rebuilt. It is written atomically: concurrent builders each replace it with
    the same complete file.
    """
    base, info = load_source(SOURCES[BASE_ID], pooling=CALIBRATION_POOLING, classifier=False,
                             allow_download=allow_download, device=None)
    target = cache_dir() / FILENAME
    if not rebuild and target.is_file() and _file_problem(target, info.sha256, full=False) is None:
        return target
    means = relu_means(base, calibration_images())
    state = normalized_state(base, means)
    floored = {k: int((v < MEAN_FLOOR * v.median()).sum()) for k, v in means.items()}
    meta = {**calibration_settings(), "base_sha256": info.sha256, "tensors_sha256": tensors_digest(state),
            "relu_means_before": {k: round(float(v.mean()), 6) for k, v in means.items()},
            "floored_filters": {k: n for k, n in floored.items() if n}}
    data = safetensors.torch.save(state, metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:
        raise WeightsError(f"cannot write {target} ({first_line(exc)}); set STYLEGRAM_CACHE elsewhere") from exc
    return target


def load_normalized_vgg(
    pooling: Pooling = "avg", *, device: torch.device | str | None = None, rebuild: bool = False,
    allow_download: bool = True,
) -> tuple[VGG, WeightsInfo]:
    """The normalised VGG16 (built and cached on first use, about a second of compute) and its record."""
    dev = resolve_device(device) if device is not None else None  # a bad name fails before any calibration
    file = ensure_normalized(rebuild=rebuild, allow_download=allow_download)
    vgg, info = load_file(file, "caffe", pooling=pooling, classifier=False, device=dev)
    return vgg, dataclasses.replace(info, source=NORMALIZED_ID)


def _load(pooling: Pooling, classifier: bool | None, allow_download: bool,
          device: torch.device | None) -> tuple[VGG, WeightsInfo]:
    if classifier:  # before any calibration
        raise WeightsError(f"{NORMALIZED_ID} has no classifier (fc6–fc8); use torchvision's vgg16 or vgg19")
    return load_normalized_vgg(pooling, device=device, allow_download=allow_download)


# ------------------------------------------------------------------------------- listing and verification


def normalized_status(base: SourceStatus) -> SourceStatus:
    """Its cached file when that is current, else available exactly when ``vgg16-caffe`` is (``base``)."""
    file = cache_dir() / FILENAME
    if file.is_file():
        problem = _file_problem(file, _base_sha256(), full=False)
        if problem is None:
            return SourceStatus(NORMALIZED_ID, DESCRIPTION, True, str(file), file.stat().st_size,
                                cached_sha256(file))
        status, reason = problem
        where = f"{file} is {f'stale ({reason})' if status == 'stale' else reason}: recalibrated from {BASE_ID} " \
                "on next use"
    else:
        where = f"not cached yet: calibrated from {BASE_ID} on first use"
    if not base.available:
        where = f"needs {BASE_ID}, which is {base.where}"
    return SourceStatus(NORMALIZED_ID, DESCRIPTION, base.available, where, None, None)


def verify_normalized() -> VerifyResult:
    """The cached file re-hashed in full against the digest and calibration it records; ``missing`` before the
    first use, ``stale`` when it was calibrated from other weights or settings (it is rebuilt on next use)."""
    file = cache_dir() / FILENAME
    if not file.is_file():
        return VerifyResult(NORMALIZED_ID, None, "missing", f"not built yet: calibrated from {BASE_ID} on first use")
    problem = _file_problem(file, _base_sha256(), full=True)
    if problem is None:
        return VerifyResult(NORMALIZED_ID, str(file), "ok", "tensors and calibration match the record")
    status, reason = problem
    advice = "it is recalibrated on next use" if status == "stale" else f"delete it and it is rebuilt from {BASE_ID}"
    return VerifyResult(NORMALIZED_ID, str(file), status, f"{reason}; {advice}")


NORMALIZED = DerivedSource(NORMALIZED_ID, BASE_ID, "caffe", DESCRIPTION, _load, normalized_status, verify_normalized)
