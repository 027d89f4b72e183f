"""Weights files and key layouts, for :mod:`stylegram.weights`: reading, checking and canonicalising state dicts.

A file is a ``.pth``/``.pt`` (tensors only, never arbitrary pickles) or ``.safetensors`` state dict in
torchvision's key layout (``features.N.*``, ``classifier.{0,3,6}.*``) or ours (``convs.conv{b}_{i}.*``,
``classifier.fc{6,7,8}.*``). :func:`canonical_state` turns either into ours, infers the architecture from the
number of convolutions and checks every shape; :func:`build_vgg` makes the frozen network. The packaged Keras
VGG16 is a third layout, read from its ONNX file by :func:`extract_onnx_convs`; :func:`converted_problem` checks
the safetensors file made from it. Nothing here knows about sources, downloads or the cache: that is
:mod:`stylegram.weights`, which re-exports the public names (import them from there).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import safetensors
import torch
from torch import Tensor

from stylegram.core.errors import StylegramError
from stylegram.nets.vgg import CONFIGS, VGG, Pooling, layer_specs

NormKind = Literal["caffe", "torchvision"]

META_KEY = "stylegram"  # one metadata entry holding sorted JSON: safetensors writes several in random order
_TV_CLASSIFIER = {"0": "fc6", "3": "fc7", "6": "fc8"}  # torchvision's nn.Sequential indices of the Linears
_FC_SHAPES = {"fc6": (4096, 512 * 7 * 7), "fc7": (4096, 4096)}  # fc8's output size is read from the file
_TV_FEATURE = re.compile(r"features\.(\d+)\.(weight|bias)")
# Keras names the layers block{b}_conv{i}; tf2onnx stores kernels already as OIHW and biases behind a Squeeze.
_ONNX_KERNEL = "functional_1/block{b}_conv{i}_1/convolution/ReadVariableOp:0"
_ONNX_BIAS = "functional_1/block{b}_conv{i}_1/Squeeze:0"


class WeightsError(StylegramError):
    """Weights that cannot be used: unknown source, corrupt or truncated file, wrong layout or shapes."""


def read_state(file: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
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
        raise WeightsError(f"{file}: cannot read weights ({type(exc).__name__}: {first_line(exc)})") from exc
    raise WeightsError(f"{file}: unsupported weights file type {suffix!r}; use .pth, .pt or .safetensors")


def recorded_meta(file: Path) -> dict[str, object] | None:
    """The JSON metadata this package records in a ``.safetensors`` file it wrote; None if unreadable or absent."""
    try:
        with safetensors.safe_open(str(file), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "null"))
    except Exception:  # SafetensorError, JSONDecodeError, OSError: all mean "nothing to trust"
        return None
    return meta if isinstance(meta, dict) else None


def recorded_normalization(meta: Mapping[str, str]) -> NormKind | None:
    """The normalisation recorded in a file's metadata when we wrote it, or None."""
    try:
        recorded = json.loads(meta.get(META_KEY, "{}")).get("normalization")
    except (json.JSONDecodeError, AttributeError):
        return None
    if recorded in ("caffe", "torchvision"):
        return "caffe" if recorded == "caffe" else "torchvision"
    return None


def is_torchvision_layout(state: Mapping[str, Tensor]) -> bool:
    return any(key.startswith("features.") for key in state)


def canonical_state(state: Mapping[str, Tensor], file: Path) -> tuple[str, dict[str, Tensor]]:
    """(arch, state in our key layout as float32), from torchvision's layout or ours, shapes checked."""
    if is_torchvision_layout(state):
        state = _from_torchvision(state, file)
    convs = {key.split(".")[1] for key in state if key.startswith("convs.")}
    arch = _arch_for(len(convs), file)
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise WeightsError(f"{file}: {key} has dtype {tensor.dtype}, expected floating point")
    out = {key: tensor.to(torch.float32).contiguous() for key, tensor in state.items()}
    check_shapes(out, arch, file)
    return arch, out


def build_vgg(
    arch: str, norm: NormKind, pooling: Pooling, classifier: bool | None, state: dict[str, Tensor], file: Path
) -> VGG:
    """A frozen VGG holding ``state`` (our layout); ``classifier=None`` keeps fc6–fc8 when the state has them."""
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


def check_shapes(state: Mapping[str, Tensor], arch: str, file: Path) -> None:
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


def tensors_digest(state: Mapping[str, Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes in sorted order: independent of the file's byte layout."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


# ------------------------------------------------------------------------ the packaged Keras VGG16 (ONNX)


def extract_onnx_convs(onnx_path: Path) -> dict[str, Tensor]:
    """The 13 convolutions of the packaged Keras VGG16 in our key layout; its tumour head is ignored."""
    import onnx  # imported here: only the one-time conversion needs it, and it is slow to import
    from onnx import numpy_helper

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises protobuf DecodeError and others on a damaged file
        raise WeightsError(f"{onnx_path}: not a readable ONNX model ({first_line(exc)})") from exc
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


def converted_problem(file: Path, source_sha256: str | None, *, full: bool) -> str | None:
    """Why a file converted by :func:`extract_onnx_convs` cannot be trusted, or None. Cheap: its header
    (safetensors checks the file size against it) and the recorded source hash; ``full`` also re-hashes every
    tensor."""
    try:
        with safetensors.safe_open(str(file), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "{}"))
            if meta.get("source_sha256") != source_sha256:
                return f"converted from a different source (sha256 {meta.get('source_sha256')})"
            if not full:
                return None
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # SafetensorError, JSONDecodeError, OSError: all mean "unusable"
        return f"unreadable ({first_line(exc)})"
    if tensors_digest(state) != meta.get("tensors_sha256"):
        return "tensor data differs from what was recorded at conversion"
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
