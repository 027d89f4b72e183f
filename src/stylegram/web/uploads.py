"""Uploaded images: checked before they are decoded, stored under names the server makes, never the client's.

The order matters: size of the file, then its type and pixel count from the header alone (a 50 kB PNG can
claim 60000 × 60000 pixels: a decompression bomb), and only then a full decode, by the same
:func:`stylegram.core.images.load_image` the command line uses, so a truncated file is refused here, in the
request, rather than in the worker minutes later.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from stylegram.core import images
from stylegram.core.atomic import atomic_write_bytes
from stylegram.core.errors import StylegramError
from stylegram.web.config import format_bytes

TYPES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}  # what Pillow calls them → the extension we store


class UploadError(StylegramError):
    """An uploaded file the server will not use, with a one-line message naming it as the client did."""


class FileTooLarge(UploadError):
    """An uploaded file over the size limit (HTTP 413)."""


@dataclass(frozen=True)
class StoredImage:
    """An accepted upload: where the server keeps it, and what the client called it (for messages and records)."""

    path: Path
    name: str
    sha256: str
    width: int
    height: int

    def describe(self) -> dict[str, str]:
        """The record's description of this input, in the shape of :func:`stylegram.core.record.describe_file`."""
        return {"file": self.name, "sha256": self.sha256}


def client_name(raw: str | None) -> str:
    """A file name fit to show and record: the base name only, printable, at most 100 characters."""
    base = re.split(r"[\\/]", raw or "")[-1]
    clean = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()[:100]
    return clean or "image"


def store_image(data: bytes, raw_name: str | None, what: str, folder: Path, *, max_bytes: int,
                max_pixels: int) -> StoredImage:
    """Check ``data`` (an uploaded file; ``what`` says which: "content", "style 2") and keep it in ``folder``."""
    name = client_name(raw_name)
    label = f"{what} '{name}'"
    if not data:
        raise UploadError(f"{label} is empty")
    if len(data) > max_bytes:
        raise FileTooLarge(f"{label} is {format_bytes(len(data))}, more than the limit of {format_bytes(max_bytes)}")
    fmt, (width, height) = _header(data, label)
    if fmt not in TYPES:
        raise UploadError(f"{label} is a {fmt or 'unknown'} image; send PNG, JPEG or WebP")
    if width * height > max_pixels:
        raise UploadError(f"{label} is {width}x{height} = {width * height:,} pixels, more than the limit of "
                          f"{max_pixels:,} (refused before decoding)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{TYPES[fmt]}"
    atomic_write_bytes(path, data)
    try:
        images.load_image(path)  # the full decode, as the CLI would do it
    except images.ImageError as e:
        path.unlink(missing_ok=True)
        raise UploadError(str(e).replace(f"'{path}'", label).replace(str(path), label)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StoredImage(path, name, hashlib.sha256(data).hexdigest(), width, height)


def _header(data: bytes, label: str) -> tuple[str | None, tuple[int, int]]:
    """The format and size an image file declares, read without decoding its pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return im.format, im.size
    except Image.DecompressionBombError:
        # Pillow's own ceiling (about 179 Mpx) sits above ours: refused either way, before decoding.
        raise UploadError(f"{label} has too many pixels (refused before decoding)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise UploadError(f"{label} is not an image, or not one of PNG, JPEG or WebP") from None


def remove_quietly(paths: list[Path]) -> None:
    """Remove files that may already be gone."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
