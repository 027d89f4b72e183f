"""A small labelled data set the project draws itself, to train ZFNet on where no ImageNet is at hand.

Four classes of RGB images, each on a softly textured random background: ``disc``, ``square``, ``triangle`` and
``stripes``, with random colours, sizes, positions and (for stripes) orientations. Written as PNG files in one
subfolder per class, the layout ``stylegram zfnet train --data`` reads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stylegram.core import images
from stylegram.core.errors import UsageError

CLASSES = ("disc", "square", "triangle", "stripes")


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One ``size``² image of class ``kind``."""
    # A soft textured background: low-contrast colour noise around a random base colour.
    base = rng.uniform(40, 215, 3)
    noise = rng.uniform(-1, 1, (max(2, size // 8), max(2, size // 8), 3)) * 45 + base
    img = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    r = rng.uniform(0.2, 0.4) * size
    cx, cy = rng.uniform(r, size - r, 2)
    if kind == "disc":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        a = rng.uniform(0, math.pi / 2)
        pts = [(cx + r * math.cos(a + i * math.pi / 2), cy + r * math.sin(a + i * math.pi / 2)) for i in range(4)]
        draw.polygon(pts, fill=colour)
    elif kind == "triangle":
        a = rng.uniform(0, 2 * math.pi)
        angles = [a + i * 2 * math.pi / 3 for i in range(3)]
        pts = [(cx + r * math.cos(b), cy + r * math.sin(b)) for b in angles]
        draw.polygon(pts, fill=colour)
    elif kind == "stripes":
        a, period = rng.uniform(0, math.pi), rng.uniform(0.1, 0.25) * size
        yy, xx = np.mgrid[0:size, 0:size]
        band = (np.cos(a) * xx + np.sin(a) * yy) % period < period / 2
        pixels = np.array(img)
        pixels[band] = colour
        img = Image.fromarray(pixels)
    else:
        raise UsageError(f"unknown shape {kind!r}; choose one of {', '.join(CLASSES)}")
    return img


def write_shapes(folder: str | os.PathLike[str], per_class: int = 100, size: int = 64, seed: int = 0) -> Path:
    """Write ``per_class`` images of each class under ``folder``/<class>/ (the same files for the same seed)."""
    if per_class < 1 or size < 8:
        raise UsageError(f"per-class must be >= 1 and size >= 8, got {per_class} and {size}")
    root = Path(folder)
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        for i in range(per_class):
            images.save_image(draw_shape(kind, size, rng), root / kind / f"{kind}_{i:04d}.png")
    return root
