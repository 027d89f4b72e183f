"""The images the project ships for its demo."""

import numpy as np

from stylegram.core.samples import demo_content, generated_painting


def test_generated_painting_is_deterministic_and_painterly() -> None:
    a, b = generated_painting(96, seed=3), generated_painting(96, seed=3)
    assert a.size == (96, 96) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(generated_painting(96, seed=4)))
    pixels = np.asarray(a).astype(float)
    # Real structure: plenty of contrast and several distinct colours, not a flat or noisy field.
    assert pixels.std() > 20
    assert len({tuple(p) for p in (pixels[::8, ::8].reshape(-1, 3) // 32).astype(int)}) > 8
    # Strokes: neighbouring pixels along the image are strongly correlated (smooth streaks, not white noise).
    grey = pixels.mean(axis=2)
    corr = np.corrcoef(grey[:, :-1].ravel(), grey[:, 1:].ravel())[0, 1]
    assert corr > 0.8


def test_demo_content_is_the_astronaut() -> None:
    photo = demo_content()
    assert photo.size == (512, 512) and photo.mode == "RGB"
