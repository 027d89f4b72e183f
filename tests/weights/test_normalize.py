"""The normalised VGG: unit mean activations on the calibration images, same network up to per-channel scales."""

from __future__ import annotations

import json
import os

import pytest
import safetensors
import torch

from stylegram.nets.vgg import VGG
from stylegram.weights import cache_dir
from stylegram.weights.normalize import (
    CALIBRATION_IMAGES,
    CALIBRATION_POOLING,
    FILENAME,
    MEAN_FLOOR,
    NORMALIZED_ID,
    calibration_images,
    ensure_normalized,
    filter_scales,
    load_normalized_vgg,
    normalize_vgg,
    relu_means,
)

RELUS = [f"relu{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]


def assert_positively_proportional(orig: dict[str, torch.Tensor], norm: dict[str, torch.Tensor],
                                   means: dict[str, torch.Tensor]) -> None:
    """relu_l(normalised) · s_l == relu_l(original), channel by channel, s_l the floored means, for every layer."""
    scales = filter_scales(means)
    for name in RELUS:
        m = scales[name]
        scale = orig[name].abs().max()
        torch.testing.assert_close(norm[name] * m[None, :, None, None], orig[name], rtol=1e-3,
                                   atol=1e-4 * float(scale), msg=lambda text, n=name: f"{n}: {text}")


def test_filter_scales_floor_rare_filters_at_a_fraction_of_the_layer_median() -> None:
    means = {"a": torch.tensor([0.0, 0.05, 1.0, 2.0, 3.0]), "dead": torch.zeros(4), "b": torch.tensor([4.0, 8.0])}
    scales = filter_scales(means, floor=0.1)
    torch.testing.assert_close(scales["a"], torch.tensor([0.1, 0.1, 1.0, 2.0, 3.0]))
    torch.testing.assert_close(scales["dead"], torch.ones(4))  # a dead layer keeps its scale: no division by 0
    torch.testing.assert_close(scales["b"], means["b"])
    torch.testing.assert_close(filter_scales(means, floor=0.0)["a"][1:], means["a"][1:])  # no floor: the means


def test_random_network_normalises_exactly(random_vgg: VGG) -> None:
    g = torch.Generator().manual_seed(0)
    batch = [torch.rand(1, 3, 32, 32, generator=g) for _ in range(2)]
    norm = normalize_vgg(random_vgg, batch)
    assert norm.pooling == random_vgg.pooling and norm.normalize.kind == random_vgg.normalize.kind
    before = relu_means(random_vgg, batch)
    scales = filter_scales(before)
    floored = 0
    for name, m in relu_means(norm, batch).items():
        rare = before[name] < MEAN_FLOOR * before[name].median()
        # Filters that (almost) never fire are divided by the floor, not blown up by 1/~0: their mean stays < 1.
        torch.testing.assert_close(m[rare], before[name][rare] / scales[name][rare], rtol=0, atol=1e-3, msg=name)
        assert bool((m[rare] < 1).all()), name
        torch.testing.assert_close(m[~rare], torch.ones_like(m[~rare]), rtol=0, atol=1e-3, msg=name)
        floored += int(rare.sum())
    assert floored > 0, "the fixture was expected to have rare filters, to exercise the floor"
    x = torch.rand(1, 3, 36, 44, generator=g)  # an image it was not calibrated on
    with torch.no_grad():
        assert_positively_proportional(random_vgg(x, RELUS), norm(x, RELUS), before)


def test_calibration_images_are_square_rgb_photos() -> None:
    batch = calibration_images(CALIBRATION_IMAGES[:2], size=64)
    assert [tuple(x.shape) for x in batch] == [(1, 3, 64, 64)] * 2
    assert all(float(x.min()) >= 0 and float(x.max()) <= 1 and float(x.std()) > 0.05 for x in batch)
    with pytest.raises(ValueError, match="no image 'nonesuch'"):
        calibration_images(["nonesuch"])


@pytest.fixture(scope="module")
def calibration() -> list[torch.Tensor]:
    return calibration_images()


@pytest.fixture(scope="module")
def original_means(real_vgg: VGG, calibration: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    from stylegram.weights import load_vgg

    original, _ = load_vgg("vgg16-caffe", pooling=CALIBRATION_POOLING)
    return relu_means(original, calibration)


@pytest.fixture(scope="module")
def normalized_max(real_vgg: VGG) -> VGG:
    vgg, info = load_normalized_vgg(pooling="max")
    assert info.source == NORMALIZED_ID and info.normalization == "caffe"
    return vgg


def test_real_network_has_unit_mean_activations(
    normalized_max: VGG, calibration: list[torch.Tensor], original_means: dict[str, torch.Tensor]
) -> None:
    floored = {}
    for name, m in relu_means(normalized_max, calibration).items():
        assert m.shape[0] in (64, 128, 256, 512)
        rare = original_means[name] < MEAN_FLOOR * original_means[name].median()
        torch.testing.assert_close(m[~rare], torch.ones_like(m[~rare]), rtol=0, atol=1e-3, msg=name)
        assert bool((m[rare] < 1).all()), name  # floored: below 1, never amplified beyond 1/MEAN_FLOOR × median
        floored[name] = int(rare.sum())
    # The reason for the floor (see the module docstring): a relu2_1 filter that hardly fires on photos.
    assert floored["relu2_1"] >= 1 and sum(floored.values()) < 0.01 * sum(m.shape[0] for m in original_means.values())
    r = original_means["relu2_1"]
    assert float(r.min() / r.median()) < 0.01


def test_real_network_is_the_original_up_to_positive_channel_scales(
    real_vgg: VGG, normalized_max: VGG, original_means: dict[str, torch.Tensor]
) -> None:
    from stylegram.core.images import to_tensor
    from stylegram.core.samples import generated_painting

    means = original_means
    original = real_vgg  # average pooling: proportionality holds for either pooling, whatever was calibrated
    normalized, _ = load_normalized_vgg(pooling="avg")
    x = to_tensor(generated_painting(64, seed=3))  # not a calibration image
    with torch.no_grad():
        assert_positively_proportional(original(x, RELUS), normalized(x, RELUS), means)
    # The raw network's layers differ by orders of magnitude; that is what the normalisation removes.
    per_layer = torch.stack([means[n].mean() for n in RELUS])
    assert float(per_layer.max() / per_layer.min()) > 50


def test_cache_file_is_reused_and_rebuilt_when_stale(normalized_max: VGG) -> None:
    target = cache_dir() / FILENAME
    assert ensure_normalized() == target
    with safetensors.safe_open(str(target), "pt") as handle:
        meta = json.loads((handle.metadata() or {})["stylegram"])
    assert meta["source"] == NORMALIZED_ID and meta["base"] == "vgg16-caffe" and meta["normalization"] == "caffe"
    assert meta["calibration_images"][0] == "skimage.data.astronaut"
    assert meta["mean_floor"] == MEAN_FLOOR and meta["format"] >= 2 and "relu2_1" in meta["floored_filters"]
    stamp = target.stat().st_mtime_ns
    ensure_normalized()
    assert target.stat().st_mtime_ns == stamp, "an up-to-date file was rebuilt"
    target.write_bytes(b"not safetensors")
    ensure_normalized()
    assert target.stat().st_size > 50_000_000 and not any(
        p.name.endswith(".tmp") for p in target.parent.iterdir()
    )
    os.utime(target)  # leave it valid for later tests
