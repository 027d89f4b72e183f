"""A learned deconvolutional network: its layers, how to encode an image with them, and its file.

The file is safetensors: per layer ``layer1.filters`` (K, C, s, s) float32 and ``layer1.connectivity`` (K, C)
uint8, and under the metadata key ``"stylegram"`` one JSON object: the format, each layer's spec, the inference
options and preprocessing, and the record of how the model was made. It is written atomically; reading checks the
metadata and every tensor against it and names the first problem in one line (:class:`DeconvModelError`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylegram.core.atomic import atomic_write_bytes
from stylegram.core.errors import OptionsError, StylegramError
from stylegram.core.events import OnStep, tagged
from stylegram.deconvnets import ops
from stylegram.deconvnets.contrast import preprocess
from stylegram.deconvnets.inference import infer
from stylegram.deconvnets.layer import Layer
from stylegram.deconvnets.options import InferenceOptions, LayerSpec

FORMAT = "stylegram-deconvnet/1"
METADATA_KEY = "stylegram"


class DeconvModelError(StylegramError):
    """A model file that cannot be used: missing, truncated, foreign, or with metadata and tensors that disagree."""


@dataclass(frozen=True)
class LayerCode:
    """One layer's part of an encoding (tensors on the model's device)."""

    maps: Tensor  # (B, K, H_l + s - 1, W_l + s - 1): the sparse maps
    reconstruction: Tensor  # (B, 1, H, W): the preprocessed input rebuilt from these maps alone, down every layer
    terms: dict[str, float]  # this layer's objective on its own input: reconstruction, sparsity, total, nonzero


@dataclass(frozen=True)
class Encoding:
    input: Tensor  # (B, 1, H, W): the greyscale, contrast-normalised image the first layer explains
    layers: tuple[LayerCode, ...]


@dataclass
class DeconvNet:
    """Layers learned by :func:`stylegram.deconvnets.learn`; ``encode`` infers each layer's maps in turn."""

    layers: tuple[Layer, ...]
    inference: InferenceOptions = field(default_factory=InferenceOptions)
    contrast: str = "local"
    record: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> DeconvNet:
        return DeconvNet(tuple(layer.to(device) for layer in self.layers), self.inference, self.contrast,
                         self.record)

    def encode(self, image: Tensor, *, layers: int | None = None, inference: InferenceOptions | None = None,
               on_step: OnStep | None = None) -> Encoding:
        """Maps and reconstructions of an RGB image batch (B, 3, H, W) in [0, 1] (or greyscale (B, 1, H, W)).

        Layer 1 explains the preprocessed image, layer l + 1 the sparse maps of layer l, each by the paper's
        inference (``inference``: default the options the model was learned with). Events are tagged with the
        layer (``stage``). ``layers`` stops after that many.
        """
        count = len(self.layers) if layers is None else layers
        if not 1 <= count <= len(self.layers):
            raise OptionsError(f"layers must be between 1 and {len(self.layers)}, got {count}")
        dev = self.layers[0].filters.device
        x = preprocess(image.to(device=dev, dtype=torch.float32), self.contrast)
        signal, codes = x, []
        for i, layer in enumerate(self.layers[:count]):
            result = infer(signal, layer, inference or self.inference, on_step=tagged(on_step, i, count))
            codes.append(LayerCode(result.maps, self.project(result.maps, i), result.terms))
            signal = result.maps
        return Encoding(x, tuple(codes))

    def project(self, maps: Tensor, layer: int) -> Tensor:
        """Maps of ``layer`` (0-based) taken down through it and every layer below: (B, C0, H, W) input space."""
        out = maps
        for lower in reversed(self.layers[: layer + 1]):
            out = ops.reconstruct(out, lower.weight())
        return out

    def pixel_filters(self, layer: int) -> Tensor:
        """The filters of ``layer`` (0-based) drawn in pixel space: (K, 1, S, S), layer 2 as the paper draws it."""
        f, g = self.layers[layer].filters, self.layers[layer].connectivity
        for lower in reversed(self.layers[:layer]):
            f = ops.pixel_filters(f, g, lower.filters, lower.connectivity)
            g = torch.ones(f.shape[0], f.shape[1], dtype=torch.bool, device=f.device)
        return f

    # ---------------------------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model atomically (a reader never sees half a file)."""
        from safetensors.torch import save

        tensors: dict[str, Tensor] = {}
        for i, layer in enumerate(self.layers, 1):
            tensors[f"layer{i}.filters"] = layer.filters.detach().to("cpu", torch.float32).contiguous()
            tensors[f"layer{i}.connectivity"] = layer.connectivity.to("cpu", torch.uint8).contiguous()
        meta = {"format": FORMAT, "layers": [layer.spec.to_dict() for layer in self.layers],
                "inference": self.inference.to_dict(), "contrast": self.contrast, "record": self.record}
        data: bytes = save(tensors, metadata={METADATA_KEY: json.dumps(meta, allow_nan=False)})
        return atomic_write_bytes(path, data)


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> DeconvNet:
    """Read a model file written by :meth:`DeconvNet.save`; raises :class:`DeconvModelError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    name, file = os.fspath(path), Path(path)
    if not file.is_file():
        raise DeconvModelError(f"model file not found: {name}" if not file.exists() else f"{name}: not a file")
    try:
        data = file.read_bytes()
        tensors: dict[str, Tensor] = load(data)
        length = int.from_bytes(data[:8], "little")
        header_meta = json.loads(data[8 : 8 + length]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DeconvModelError(f"{name}: not a readable safetensors file (truncated or corrupt? {first})") from None
    meta = _metadata(header_meta, name)
    try:
        specs = [LayerSpec.from_dict(s) for s in meta["layers"]]
        inference = InferenceOptions.from_dict(meta["inference"])
    except (StylegramError, TypeError, KeyError) as e:
        raise DeconvModelError(f"{name}: bad metadata ({e})") from None
    layers = tuple(_layer(tensors, i, spec, name) for i, spec in enumerate(specs, 1))
    _check_chain(layers, name)
    return DeconvNet(layers, inference, str(meta.get("contrast", "local")), dict(meta.get("record", {}))).to(device)


def _metadata(header: dict[str, Any], name: str) -> dict[str, Any]:
    if METADATA_KEY not in header:
        raise DeconvModelError(f"{name}: a safetensors file without stylegram metadata; is it a deconvnet model?")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise DeconvModelError(f"{name}: its metadata is not valid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DeconvModelError(f"{name}: metadata format is {found!r}, expected {FORMAT!r} (not a deconvnet model)")
    if not isinstance(meta.get("layers"), list) or not meta["layers"]:
        raise DeconvModelError(f"{name}: the metadata lists no layers")
    if meta.get("contrast", "local") not in ("local", "none"):
        raise DeconvModelError(f"{name}: unknown preprocessing {meta.get('contrast')!r}")
    return meta


def _layer(tensors: dict[str, Tensor], i: int, spec: LayerSpec, name: str) -> Layer:
    f, g = tensors.get(f"layer{i}.filters"), tensors.get(f"layer{i}.connectivity")
    if f is None or g is None:
        raise DeconvModelError(f"{name}: layer {i} has no filters or connectivity tensor")
    if f.dim() != 4 or tuple(f.shape[2:]) != (spec.filter, spec.filter) or f.shape[0] != spec.maps:
        raise DeconvModelError(f"{name}: layer {i} filters have shape {tuple(f.shape)}, expected "
                               f"({spec.maps}, C, {spec.filter}, {spec.filter})")
    if tuple(g.shape) != tuple(f.shape[:2]):
        raise DeconvModelError(f"{name}: layer {i} connectivity has shape {tuple(g.shape)}, expected "
                               f"{tuple(f.shape[:2])}")
    if not torch.isfinite(f).all():
        raise DeconvModelError(f"{name}: layer {i} filters hold NaN or infinite values")
    return Layer(spec, f.to(torch.float32), g.to(torch.bool))


def _check_chain(layers: tuple[Layer, ...], name: str) -> None:
    if layers[0].channels != 1:
        raise DeconvModelError(f"{name}: layer 1 has {layers[0].channels} input channels, expected 1 (greyscale)")
    for i in range(1, len(layers)):
        if layers[i].channels != layers[i - 1].maps:
            raise DeconvModelError(f"{name}: layer {i + 1} reads {layers[i].channels} channels but layer {i} "
                                   f"has {layers[i - 1].maps} maps")
