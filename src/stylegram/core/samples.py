"""Images the project may ship: a photo from scikit-image's data set and a painting it generates itself.

The generated "painting" gives the demo a style image with real brush-stroke structure (swirling strokes over
patches of a small palette) without shipping anyone's artwork: colour patches come from smoothed noise, and
strokes from line-integral convolution of noise along a field of vortices.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

# A night-sky palette: deep blues, teal, ochre and pale yellow (RGB, 0–255).
PALETTE = np.array(
    [[18, 36, 92], [40, 78, 150], [86, 132, 190], [30, 110, 120], [214, 170, 60], [245, 222, 120], [236, 236, 210]],
    dtype=np.float64,
)


def demo_content() -> Image.Image:
    """The astronaut photo (Eileen Collins, NASA, public domain) from ``skimage.data``."""
    from skimage import data  # imported here: scikit-image is slow to import and only this needs it

    photo: np.ndarray = data.astronaut()  # type: ignore[no-untyped-call]
    return Image.fromarray(photo).convert("RGB")


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field: np.ndarray = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    normalised: np.ndarray = (field - field.mean()) / (field.std() + 1e-12)
    return normalised


def _flow_angles(rng: np.random.Generator, size: int, vortices: int) -> np.ndarray:
    """Direction of strokes at each pixel: a sum of vortices (swirls) and a gentle diagonal drift."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    vx, vy = np.full_like(xx, 0.6), np.full_like(yy, 0.25)
    for _ in range(vortices):
        cx, cy = rng.uniform(0.1, 0.9, 2)
        strength = rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0])
        dx, dy = xx - cx, yy - cy
        r2 = dx * dx + dy * dy + 0.01
        falloff = strength * np.exp(-r2 / 0.05) / np.sqrt(r2)
        vx, vy = vx - dy * falloff, vy + dx * falloff
    return np.arctan2(vy, vx)  # type: ignore[no-any-return]


def _line_integral(values: np.ndarray, angles: np.ndarray, length: int) -> np.ndarray:
    """Average ``values`` (H, W) or (H, W, C) along the streamline through each pixel, both ways."""
    h, w = angles.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = values[..., None] if values.ndim == 2 else values
    total = planes.copy()
    for direction in (1.0, -1.0):
        py, px = ys.copy(), xs.copy()
        for _ in range(length):
            a = ndimage.map_coordinates(angles, [py, px], order=1, mode="wrap")
            py, px = (py + direction * np.sin(a)) % h, (px + direction * np.cos(a)) % w
            for c in range(planes.shape[-1]):
                total[..., c] += ndimage.map_coordinates(planes[..., c], [py, px], order=1, mode="wrap")
    out = total / (2 * length + 1)
    return out[..., 0] if values.ndim == 2 else out


def generated_painting(size: int = 384, seed: int = 7) -> Image.Image:
    """A swirling brush-stroke painting, ``size``×``size``, the same pixels for the same seed."""
    rng = np.random.default_rng(seed)
    # Soft assignment of each pixel to palette colours through smoothed noise fields.
    logits = np.stack([_smooth_noise(rng, (size, size), size / 14) for _ in PALETTE], axis=-1)
    weights = np.exp(3.0 * logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    base = weights @ PALETTE
    angles = _flow_angles(rng, size, vortices=6)
    # Strokes: colours smeared along the flow, and streaks from noise integrated along it.
    smeared = _line_integral(base, angles, length=max(4, size // 40))
    # Slightly blurred noise gives strokes a few pixels wide rather than hair-thin lines.
    grain = ndimage.gaussian_filter(rng.random((size, size)), size / 300, mode="wrap")
    streaks = _line_integral(grain, angles, length=max(6, size // 24))
    streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-12)
    painted = smeared * (1.0 + 0.28 * streaks[..., None])
    return Image.fromarray(np.clip(painted, 0, 255).astype(np.uint8), "RGB")
