"""Trained feed-forward models (Johnson et al. 2016): the model file format, loading, and applying.

A model file is a safetensors file: the network's state dict as tensors, and under the metadata key
``"stylegram"`` one JSON object (:class:`ModelInfo`) saying which registered architecture the tensors belong to
(:mod:`stylegram.feedforward.architectures`), the numbers that shape it, and how it was trained. Loading checks
the file, the metadata and every tensor's shape against the network the metadata describes, and raises
:class:`ModelError` with a one-line message naming the first problem.

    model = stylegram.load_model("mosaic.safetensors")
    picture = model.stylize(Image.open("photo.jpg"))          # PIL in, PIL out
    batch = model.stylize(torch.rand(4, 3, 256, 256))          # tensor in, tensor out
    quick = stylegram.load_model("mosaic.safetensors", precision="auto")  # bfloat16 where the hardware has it
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import torch
from PIL import Image
from torch import Tensor, nn

from stylegram.core import images
from stylegram.core.device import Precision, resolve_precision
from stylegram.core.errors import StylegramError
from stylegram.feedforward.architectures import ARCHITECTURES, STYLE_ARCHITECTURE, Architecture, Task, lookup
from stylegram.nets.superres import SuperResNet, for_inference

FORMAT = "stylegram-fast-style/1"
METADATA_KEY = "stylegram"


class ModelError(StylegramError):
    """A model file that cannot be used: missing, truncated, foreign, or with metadata and tensors that disagree."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model file holds and how it was made; stored as JSON in the safetensors metadata."""

    width: float = 1.0
    style_image: str = ""
    style_size: int = 0
    content_weight: float = 0.0
    style_weight: float = 0.0
    tv_weight: float = 0.0
    vgg_weights: str = ""
    iterations: int = 0
    stylegram_version: str = ""
    architecture: str = STYLE_ARCHITECTURE
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)  # the full training options, seed, losses …
    scale: int = 1  # output side ÷ input side (super-resolution networks: 4 or 8)
    blocks: int = 0  # residual blocks; 0: the architecture's default

    @property
    def task(self) -> Task:
        """What the network does: ``style`` or ``superres``."""
        return self.arch.task

    @property
    def arch(self) -> Architecture:
        found = lookup(self.architecture)
        if found is None:
            raise ModelError(f"architecture {self.architecture!r} is unknown")
        return found

    def build(self) -> nn.Module:
        """A freshly initialised network of the shape this record describes."""
        return self.arch.build(self.width, self.scale, self.blocks)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, name: str) -> ModelInfo:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"{name}: its metadata is not valid JSON ({e.msg})") from None
        if not isinstance(raw, dict):
            raise ModelError(f"{name}: its metadata is not a JSON object")
        if raw.get("format") != FORMAT:
            raise ModelError(f"{name}: metadata format is {raw.get('format')!r}, expected {FORMAT!r}")
        named = raw.get("architecture", STYLE_ARCHITECTURE)
        arch = lookup(named) if isinstance(named, str) else None
        if arch is None:
            raise ModelError(f"{name}: architecture {raw.get('architecture')!r} is unknown (known: "
                             f"{', '.join(ARCHITECTURES)})")
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(kinds))
        if unknown:
            raise ModelError(f"{name}: unknown metadata field(s) {', '.join(unknown)}")
        for key, value in raw.items():
            if not _has_type(value, str(kinds[key])):
                raise ModelError(f"{name}: metadata field {key!r} should be {kinds[key]}, got {value!r}")
        info = cls(**raw)
        problems = list(arch.problems(info.width, info.scale, info.blocks))
        if problems:
            raise ModelError(f"{name}: metadata {problems[0]}")
        return info


def _has_type(value: Any, kind: str) -> bool:
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, dict)


# ---------------------------------------------------------------------------------------------- files


def save_model(net: nn.Module, path: str | os.PathLike[str], info: ModelInfo) -> Path:
    """Write ``net`` and ``info`` to a safetensors file, atomically (a reader never sees half a model).

    The tensors are checked against the network ``info`` describes first (ModelError when they disagree), so a
    file that is written can always be loaded.
    """
    from safetensors.torch import save

    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    _check_tensors(state, info, os.fspath(path))
    data: bytes = save(state, metadata={METADATA_KEY: info.to_json()})
    return images.atomic_write_bytes(path, data)


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], ModelInfo]:
    """The tensors and metadata of a model file, each checked; raises :class:`ModelError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    name = os.fspath(path)
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"model file not found: {name}" if not file.exists() else f"{name}: not a file")
    try:
        data = file.read_bytes()
        state: dict[str, Tensor] = load(data)
        meta = _header_metadata(data)
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"{name}: not a readable safetensors model file (truncated or corrupt? {first})") from None
    if METADATA_KEY not in meta:
        raise ModelError(f"{name}: safetensors file without stylegram metadata; is it a style model?")
    info = ModelInfo.from_json(meta[METADATA_KEY], name)
    _check_tensors(state, info, name)
    return state, info


def _header_metadata(data: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header whose "__metadata__" holds
    # str -> str pairs. load() above has already validated the whole file, so this parse cannot go out of range.
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def _check_tensors(state: dict[str, Tensor], info: ModelInfo, name: str) -> None:
    """Every tensor the architecture needs, with its shape, floating point and finite; nothing else."""
    try:
        expected = info.build().state_dict()
    except ValueError as e:
        raise ModelError(f"{name}: metadata {e}") from None
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:3])}" + (" …" if len(missing) > 3 else "")] if missing else []) + (
            [f"unexpected {', '.join(extra[:3])}" + (" …" if len(extra) > 3 else "")] if extra else [])
        raise ModelError(f"{name}: tensors do not match a {info.architecture} network of width {info.width}: "
                         + "; ".join(parts))
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise ModelError(f"{name}: tensor {key} has shape {tuple(got.shape)}, but width {info.width} needs "
                             f"{tuple(ref.shape)} (a {info.architecture} network)")
        if got.is_floating_point() != ref.is_floating_point():  # counters such as batch norm's are integers
            raise ModelError(f"{name}: tensor {key} has dtype {got.dtype}, expected {ref.dtype}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise ModelError(f"{name}: tensor {key} holds NaN or infinite values")


def load_model(path: str | os.PathLike[str], device: torch.device | str | None = None, *,
               precision: Precision = "float32") -> FastStyleModel:
    """A trained model from a file written by :func:`save_model` (or ``stylegram train``).

    ``precision`` is the arithmetic of inference (see :class:`FastStyleModel`); checked before the file is read.
    """
    resolve_precision(precision, torch.device(device) if device is not None else torch.device("cpu"))
    state, info = read_model_file(path)
    net = info.build()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return FastStyleModel(net, info, device, precision=precision)


# ---------------------------------------------------------------------------------------------- applying


class FastStyleModel:
    """A trained transform network ready to stylise: PIL images or RGB tensors (B, 3, H, W) in [0, 1].

    ``size`` scales the input so its longer side has that many pixels first; ``original_colors`` keeps the
    content's colours (the stylised luminance with the input's chrominance, :func:`stylegram.color.keep_colors`).

    ``precision`` (``float32``, ``bfloat16`` or ``auto``) is the arithmetic of the forward pass; :attr:`precision`
    holds the one in use, ``auto`` resolved (bfloat16 where :func:`stylegram.gatys.native_bfloat16` says the
    device has it in hardware, else float32). float32 is the default of the library: it is the paper's arithmetic
    and what ONNX export checks against. With bfloat16 the convolutions run under autocast, about twice as fast on
    a CPU with AVX512-BF16; the instance-norm statistics are still accumulated in float32 by PyTorch's kernels,
    the last convolution's output is taken to float32 before the sigmoid (bfloat16 steps near 1.0 are 1/256, one
    grey level), and the result is float32 in [0, 1]. On a trained model and a 512 px photo the output differs from
    float32 by about 0.3 grey levels on average, at most 8–9 (0–255 scale).
    """

    def __init__(self, net: nn.Module, info: ModelInfo, device: torch.device | str | None = None, *,
                 precision: Precision = "float32") -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.precision = resolve_precision(precision, self.device)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.info = info
        # What inference runs: the network itself, or for super-resolution the same function with batch norms
        # folded and stride-½ convolutions as pixel shuffles (faster on a CPU; a snapshot of net).
        self.runner: nn.Module = for_inference(self.net) if isinstance(self.net, SuperResNet) else self.net

    @overload
    def stylize(self, image: Image.Image, *, size: int | None = None, original_colors: bool = False,
                match_histogram: bool = True, tile: int = 0) -> Image.Image:
        ...

    @overload
    def stylize(self, image: Tensor, *, size: int | None = None, original_colors: bool = False,
                match_histogram: bool = True, tile: int = 0) -> Tensor:
        ...

    def stylize(self, image: Image.Image | Tensor, *, size: int | None = None, original_colors: bool = False,
                match_histogram: bool = True, tile: int = 0) -> Image.Image | Tensor:
        """The one verb of every feed-forward model: stylise a photo, or super-resolve it (the output is then
        ``scale`` times larger). See :meth:`stylize_tensor` for the options."""
        if isinstance(image, Image.Image):
            picture = images.resize_longest(image, size) if size else image
            return images.from_levels(self.stylize_levels(images.to_tensor(picture), original_colors=original_colors,
                                                          match_histogram=match_histogram, tile=tile)[0])
        if not isinstance(image, Tensor):
            raise TypeError(f"expected a PIL image or a (B, 3, H, W) tensor, got {type(image).__name__}")
        x = image
        if size:
            x = _resize_tensor_longest(x, size)
        return self.stylize_tensor(x, original_colors=original_colors, match_histogram=match_histogram, tile=tile)

    def stylize_tensor(self, x: Tensor, *, original_colors: bool = False, match_histogram: bool = True,
                       tile: int = 0) -> Tensor:
        """(B, 3, H, W) in [0, 1] → (B, 3, s·H, s·W) in [0, 1] (s = :attr:`scale`), on the caller's device and dtype.

        ``original_colors`` (style models): keep the input's colours. ``match_histogram`` (super-resolution
        models, on by default as in the paper): match each output channel's histogram to the input's. ``tile``
        (super-resolution models): run in cores of at most this many input pixels a side, with margins that make
        the result equal the untiled one (:mod:`stylegram.feedforward.tiles`); 0 runs the whole image at once.
        """
        _check_batch(x)
        superres = self.info.task == "superres"
        with torch.inference_mode():
            inp = x.to(self.device, torch.float32)
            with self._arithmetic():
                if superres and tile and max(inp.shape[-2:]) > tile:
                    from stylegram.feedforward.tiles import run_tiled

                    reach = int(getattr(self.runner, "margin")())  # noqa: B009  (only SR nets have it)
                    y: Tensor = run_tiled(self.runner, inp, self.scale, tile, reach)
                else:
                    y = self.runner(inp)
            if original_colors and not superres:
                from stylegram.losses.color import keep_colors

                y = keep_colors(y, inp)
            if match_histogram and superres:
                from stylegram.feedforward.imaging import match_histogram as matched

                y = matched(y.float(), inp)
        return y.to(x.device, x.dtype)

    def stylize_levels(self, x: Tensor, *, original_colors: bool = False, match_histogram: bool = True,
                       tile: int = 0) -> Tensor:
        """(B, 3, H, W) in [0, 1] → (B, s·H, s·W, 3) uint8 on the CPU: the 8-bit image that
        ``images.levels(stylize_tensor(x))`` gives, with the same options, ready for
        :func:`stylegram.core.images.from_levels`.

        For a super-resolution model the output is assembled tile by tile (one tile when ``tile`` is 0) in a
        :class:`~stylegram.feedforward.imaging.LevelCanvas`, so besides one tile's activations only the 8-bit
        output is held (and, with histogram matching, a 2-byte bin index per output value): a float copy of a
        large output, 12 bytes a pixel, is never made.
        """
        if self.info.task != "superres":
            y = self.stylize_tensor(x, original_colors=original_colors, match_histogram=match_histogram)
            return images.levels(y).permute(0, 2, 3, 1).cpu().contiguous()
        _check_batch(x)
        from stylegram.feedforward.imaging import LevelCanvas
        from stylegram.feedforward.tiles import pieces

        def forward(t: Tensor) -> Tensor:
            with self._arithmetic():
                y: Tensor = self.runner(t)
            return y

        with torch.inference_mode():
            inp = x.to(self.device, torch.float32)
            b, _, h, w = inp.shape
            s = self.scale
            canvas = LevelCanvas(b, h * s, w * s, inp if match_histogram else None)
            core = tile if tile and max(h, w) > tile else max(h, w)
            reach = int(getattr(self.runner, "margin")())  # noqa: B009  (only SR nets have it)
            for top, left, piece in pieces(forward, inp, s, core, reach):
                canvas.put(piece.float(), top, left)
            return canvas.finish()

    @property
    def scale(self) -> int:
        """Output side ÷ input side: 1 for style models, 4 or 8 for super-resolution."""
        return self.info.scale

    __call__ = stylize_tensor

    @contextmanager
    def _arithmetic(self) -> Iterator[None]:
        """The forward pass's precision: for bfloat16, autocast plus a hook that returns the last conv in float32."""
        if self.precision == "float32":
            yield
            return
        # Hooked for this call only, so the network itself (exported to ONNX, trained further) stays untouched.
        last = self.runner.get_submodule("out")  # every registered architecture names its last layer ``out``
        handle = last.register_forward_hook(lambda _m, _i, out: out.float())
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                yield
        finally:
            handle.remove()


def _check_batch(x: Tensor) -> None:
    """Raise ValueError unless ``x`` is a float RGB batch (B, 3, H, W)."""
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected a float RGB batch (B, 3, H, W), got {x.dtype} {tuple(x.shape)}")


def _resize_tensor_longest(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    new = images.longest_side_shape(h, w, size)
    if new == (h, w):
        return x
    return torch.nn.functional.interpolate(x, size=new, mode="bicubic", align_corners=False,
                                           antialias=scale < 1).clamp(0, 1)
