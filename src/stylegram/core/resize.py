"""The one resize: to a longest side (one rounding rule for PIL images, tensors and video frames), to an exact
size, and the centre square. Shrinking anti-aliases (LANCZOS); enlarging uses BICUBIC, which rings less."""

from __future__ import annotations

import numpy as np
from PIL import Image

from stylegram.core.errors import ImageError


def resize_longest(img: Image.Image, size: int) -> Image.Image:
    """Scale so the longer side is ``size`` pixels, keeping the aspect ratio; each side at least 1 px."""
    _check_side(size)
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"cannot resize an image with no pixels ({width}x{height})")
    # Round half up, so the result does not depend on banker's rounding of exact halves.
    h, w = longest_side_shape(height, width, size)
    return _resample(img, (w, h))


def center_square(img: Image.Image) -> Image.Image:
    """The largest centred square of ``img``."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))


def longest_side_shape(height: int, width: int, size: int, *, minimum: int = 1) -> tuple[int, int]:
    """(H, W) of an image of ``height`` × ``width`` scaled so its longest side is ``size`` (rounding half up,
    each side at least ``minimum``): the one rule every resize to a longest side follows."""
    if width >= height:
        return max(minimum, int(height * size / width + 0.5)), max(minimum, size)
    return max(minimum, size), max(minimum, int(width * size / height + 0.5))


def resize_to(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to exactly ``(width, height)`` pixels, ignoring the aspect ratio."""
    width, height = size
    _check_side(width)
    _check_side(height)
    return _resample(img, (width, height))


def _check_side(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ImageError(f"size must be a positive number of pixels, got {size!r}")


def _resample(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if size == img.size:
        return img.copy()
    # LANCZOS anti-aliases when shrinking; when enlarging it rings around edges, which BICUBIC keeps mild.
    shrinking = size[0] < img.width or size[1] < img.height
    method = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    return img.resize((int(size[0]), int(size[1])), method)
