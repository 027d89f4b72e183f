"""Image I/O: load any image Pillow reads as upright 8-bit RGB, resize, convert to and from tensors, save.

The tensor format at every boundary is float32 (1, 3, H, W), RGB, in [0, 1]. Every bad input (a missing
file, a directory, a corrupt or truncated file, a decompression bomb, an output that would overwrite an
input) raises :class:`ImageError` with a one-line message naming the file, ready to show a user.

Writes are atomic: the bytes go to a temporary file beside the target, are fsync'ed, and replace the target
with ``os.replace``, so a crash or a failed save never leaves a half-written image or a stray temporary
file. :func:`atomic_write_bytes` and :func:`atomic_write_text` are that primitive, shared with other modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from stylegram.core.atomic import atomic_open, atomic_write_bytes, atomic_write_text, check_writable
from stylegram.core.errors import ImageError, UsageError
from stylegram.core.resize import center_square, longest_side_shape, resize_longest, resize_to

__all__ = [
    "MAX_PIXELS",
    "ImageError",
    "atomic_write_bytes",
    "atomic_write_text",
    "center_square",
    "check_output",
    "from_levels",
    "levels",
    "load_image",
    "longest_side_shape",
    "read_metadata",
    "resize_longest",
    "resize_to",
    "save_image",
    "to_pil",
    "to_tensor",
]

MAX_PIXELS: int = 256_000_000
"""Images with more pixels than this (16000 × 16000) are refused from their header, before any decoding. It is
above the largest outputs stylegram writes itself (a ×4 upscale of a 4000 × 3000 photo: 192 Mpx), so that every
output can be read back as an input."""

# Output formats by file extension, and the image modes each can store as they are; any other mode is
# first converted to RGB the way load_image does (alpha over white), rather than failing in the encoder.
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
            ".bmp": "BMP"}
_STORABLE_MODES = {
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "JPEG": {"L", "RGB", "CMYK"},
    "WEBP": {"RGB", "RGBA"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F"},
    "BMP": {"1", "L", "P", "RGB", "RGBA"},
}
# Near-lossless defaults: outputs are artwork, and chroma subsampling visibly smears stylised colour edges.
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "PNG": {},
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95},
    "TIFF": {},
    "BMP": {},
}
_METADATA_KEY = "stylegram"

# Everything Pillow raises for a file it cannot parse or decode, across its plugins.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error,
                  Image.DecompressionBombError)


# --------------------------------------------------------------------------------------------- reading


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Read an image fully, turn it upright by its EXIF orientation, and return it as a new 8-bit RGB image.

    Transparent images are composited over white; 16-bit and float greyscale are scaled into 0–255 (see
    :func:`_to_rgb`). Decoding happens here, so a truncated file fails here and not later.
    """
    name = os.fspath(path)
    with _open(name) as im:
        try:
            with _pil_bomb_warning_silenced():
                im.load()
        except _DECODE_ERRORS as exc:
            raise _read_error(name, exc) from exc
        upright = _exif_upright(im)  # a new image, still valid once the file is closed
    try:
        return _to_rgb(upright)
    except ValueError as exc:  # a mode Pillow has no conversion for, such as some "LAB" or "HSV" files
        reason = f"its colour mode {upright.mode} is not supported"
        raise ImageError(f"cannot read image '{name}': {reason}") from exc


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata :func:`save_image` stored with an image (PNG text chunk or JSON sidecar), or None."""
    name = os.fspath(path)
    with _open(name) as im:
        is_png = im.format == "PNG"
        text = im.info.get(_METADATA_KEY)
    if is_png:
        return _parse_metadata(name, text) if isinstance(text, str) else None
    sidecar = _sidecar_path(Path(name))
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"cannot read metadata '{sidecar}': {_reason(exc)}") from exc
    return _parse_metadata(os.fspath(sidecar), text)


def _open(name: str) -> Image.Image:
    """Open lazily (header only) and refuse oversized images before a single pixel is decoded."""
    if not os.path.lexists(name):
        raise ImageError(f"cannot read image '{name}': no such file")
    if os.path.isdir(name):
        raise ImageError(f"cannot read image '{name}': it is a directory")
    try:
        with _pil_bomb_warning_silenced():
            im = Image.open(name)
    except _DECODE_ERRORS as exc:
        raise _read_error(name, exc) from exc
    try:
        _check_pixels(name, im.size)
    except ImageError:
        im.close()
        raise
    return im


@contextlib.contextmanager
def _pil_bomb_warning_silenced() -> Iterator[None]:
    # Pillow warns above its own limit (about 89 Mpx) and raises above twice that, which is below MAX_PIXELS.
    # We enforce MAX_PIXELS ourselves from the header, so its warning is noise, and while we open a file its
    # limit is raised to ours (it then raises only above twice MAX_PIXELS, before reading the header) and put
    # back afterwards. (Both are process-wide; the worst a concurrent thread sees is one warning hidden, or one
    # image up to MAX_PIXELS that its own lower limit would have refused.)
    before = Image.MAX_IMAGE_PIXELS
    if before is not None:
        Image.MAX_IMAGE_PIXELS = max(before, MAX_PIXELS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _check_pixels(name: str, size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"cannot read image '{name}': it has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"cannot read image '{name}': {width}x{height} is {width * height:,} pixels, more than the "
            f"limit of {MAX_PIXELS:,} (possible decompression bomb)"
        )


def _read_error(name: str, exc: BaseException) -> ImageError:
    if isinstance(exc, Image.DecompressionBombError):
        # Pillow refused before we saw the header; its message carries the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found.group(1)):,} pixels is" if found else "it has"
        reason = f"{count} more than the limit of {MAX_PIXELS:,} (possible decompression bomb)"
    elif isinstance(exc, UnidentifiedImageError):
        reason = "not an image, or in a format Pillow cannot read"
    elif isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        reason = _reason(exc)
    else:
        reason = "file is truncated or corrupt"
    return ImageError(f"cannot read image '{name}': {reason}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _exif_upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except _DECODE_ERRORS:
        # A malformed EXIF block should not make a readable picture unusable; its orientation is then
        # unknown, so keep the pixels as stored.
        return im.copy()


def _parse_metadata(name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ImageError(f"cannot read metadata of '{name}': it is not valid JSON") from exc
    if not isinstance(value, dict):
        raise ImageError(f"cannot read metadata of '{name}': it is not a JSON object")
    return value


# ------------------------------------------------------------------------------------ mode conversion


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode as a new 8-bit RGB image."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return Image.fromarray(_deep_to_uint8(im)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        return _over_white(im)
    # CMYK, YCbCr, P, L, 1, …: Pillow's own conversions. RGB is copied so callers always own the result.
    return im.copy() if im.mode == "RGB" else im.convert("RGB")


def _over_white(im: Image.Image) -> Image.Image:
    # Transparent pixels usually hold black, so dropping alpha would show black where the image is empty;
    # white is what a viewer shows. Pillow cannot convert premultiplied "La" to RGBA directly.
    rgba = (im.convert("LA") if im.mode == "La" else im).convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _deep_to_uint8(im: Image.Image) -> npt.NDArray[np.uint8]:
    """16-bit, 32-bit int and float greyscale scaled into 0–255; Pillow's convert("L") would clip instead.

    I;16 and I holding 0–65535 (how Pillow reads 16-bit PNG, TIFF and PGM) use the 16-bit range; F holding
    [0, 1] or [0, 255] uses that range; anything else is stretched from its minimum to its maximum.
    """
    values = np.asarray(im).astype(np.float32)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    if im.mode != "F" and low >= 0 and high <= 65535:
        scaled = values * (255 / 65535)
    elif im.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    elif im.mode == "F" and low >= 0 and high <= 255:
        scaled = values
    elif high > low:
        scaled = (values - low) * (255 / (high - low))
    else:
        scaled = np.zeros_like(values)
    levels: npt.NDArray[np.uint8] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return levels


# ------------------------------------------------------------------------------------------- tensors


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as a contiguous float32 tensor (1, 3, H, W), RGB in [0, 1]; other modes go through RGB."""
    pixels = np.array(_to_rgb(img), dtype=np.uint8)  # (H, W, 3); a writable copy that torch may share
    chw = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    return (chw.to(torch.float32) / 255).unsqueeze(0)


def to_pil(t: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) or (3, H, W) float tensor as an 8-bit RGB image: clamped to [0, 1], NaN as 0, rounded.

    Works on a detached CPU copy; the caller's tensor is never modified.
    """
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ImageError(f"expected a tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ImageError(f"expected a floating-point tensor with values in [0, 1], got {t.dtype}")
    chw = t.detach().to(device="cpu", dtype=torch.float32)
    return from_levels(levels(chw).permute(1, 2, 0))


def levels(t: torch.Tensor) -> torch.Tensor:
    """Float values in [0, 1] as 8-bit levels: clamped, NaN as 0, rounded (the one rounding every saved image
    gets); a new uint8 tensor of the same shape, on the same device."""
    return torch.nan_to_num(t, nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)


def from_levels(hwc: torch.Tensor) -> Image.Image:
    """An (H, W, 3) uint8 tensor as an RGB image (one copy, into the image's own storage)."""
    if hwc.dim() != 3 or hwc.shape[-1] != 3 or hwc.dtype != torch.uint8:
        raise ImageError(f"expected an (H, W, 3) uint8 tensor, got {hwc.dtype} {tuple(hwc.shape)}")
    return Image.fromarray(hwc.cpu().contiguous().numpy())


# ------------------------------------------------------------------------------------------- writing


def save_image(
    img: Image.Image, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``img`` atomically in the format its extension names, creating missing parent folders.

    ``metadata`` is stored as JSON: in a PNG text chunk keyed ``"stylegram"``, or for other formats in a
    sidecar ``<name>.<ext>.json``. Without metadata, a sidecar left by an earlier save to the same path is
    removed, since it no longer describes the image.
    """
    target = Path(path)
    name = os.fspath(path)
    fmt = _format_of(target, f"cannot save image '{name}'")
    if target.is_dir():
        raise ImageError(f"cannot save image '{name}': it is a directory")
    meta_json = _dump_metadata(name, metadata)
    try:
        _encode(target, name, img, fmt, meta_json)
        if fmt != "PNG":
            _write_sidecar(_sidecar_path(target), meta_json)
    except OSError as exc:
        raise ImageError(f"cannot save image '{name}': {_reason(exc)}") from exc
    return target


def check_output(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> Path:
    """Refuse an image output that cannot be written (:func:`stylegram.core.atomic.check_writable`: a folder,
    under a file, no permission, one of the inputs) or has no supported extension."""
    try:
        target = check_writable(out, inputs, "image")
    except UsageError as e:
        raise ImageError(str(e)) from None
    _format_of(target, f"cannot write '{os.fspath(out)}'")
    return target


def _format_of(target: Path, context: str) -> str:
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        found = f"'{target.suffix}'" if target.suffix else "none"
        raise ImageError(
            f"{context}: unsupported file extension {found} (supported: {', '.join(sorted(_FORMATS))})"
        )
    return fmt


def _dump_metadata(name: str, metadata: Mapping[str, Any] | None) -> str | None:
    if metadata is None:
        return None
    try:
        return json.dumps(dict(metadata), indent=2)
    except (TypeError, ValueError) as exc:
        reason = f"its metadata is not JSON-serialisable ({exc})"
        raise ImageError(f"cannot save image '{name}': {reason}") from exc


def _encode(target: Path, name: str, img: Image.Image, fmt: str, meta_json: str | None) -> None:
    """Encode straight into a temporary file beside ``target`` that replaces it only once encoding succeeded
    (streamed, so a very large image never needs its whole file in memory as well)."""
    options = dict(_SAVE_OPTIONS[fmt])
    if fmt == "PNG" and meta_json is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(_METADATA_KEY, meta_json)
        options["pnginfo"] = info
    storable = img if img.mode in _STORABLE_MODES[fmt] else _to_rgb(img)
    try:
        with atomic_open(target) as fh:
            storable.save(fh, format=fmt, **options)
    except (ValueError, KeyError) as exc:
        raise ImageError(f"cannot save image '{name}': {_reason(exc)}") from exc


def _sidecar_path(image_path: Path) -> Path:
    return image_path.with_name(image_path.name + ".json")


def _write_sidecar(sidecar: Path, meta_json: str | None) -> None:
    if meta_json is None:
        sidecar.unlink(missing_ok=True)
    else:
        atomic_write_text(sidecar, meta_json + "\n")
