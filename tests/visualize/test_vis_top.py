"""Top-k over a stream of images against a brute-force ranking; folders, unreadable files, crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.nets.vgg import VGG
from stylegram.visualize.top import ImageFolder, top_activations


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, 24, 28, generator=g) for _ in range(6)] + [torch.rand(1, 3, 32, 20, generator=g)
                                                                         for _ in range(5)]


def test_streamed_heaps_equal_the_brute_force_ranking(vgg11: VGG, one_thread: None) -> None:
    imgs = _images()
    result = top_activations(vgg11, imgs, ["relu2_1", "relu3_2"], k=3, channels={"relu2_1": [0, 7],
                             "relu3_2": [3]}, rule=None, batch_size=4)
    for layer, chans in (("relu2_1", [0, 7]), ("relu3_2", [3])):
        top = result.layers[layer]
        assert top.channels == tuple(chans)
        for c, hits in zip(chans, top.hits, strict=True):
            maxima = [float(vgg11(x, [layer])[layer][0, c].max()) for x in imgs]
            best = sorted(range(len(imgs)), key=lambda i: -maxima[i])[:3]
            assert [h.source for h in hits] == best
            for h in hits:
                fmap = vgg11(imgs[h.source], [layer])[layer][0, c]
                assert h.value == pytest.approx(maxima[h.source], rel=1e-5)
                assert float(fmap[h.position]) == pytest.approx(h.value, rel=1e-5)
    assert result.images == 11 and not result.stopped


def test_projections_and_patches_are_cropped_to_the_field(vgg11: VGG, one_thread: None) -> None:
    imgs = _images()[:4]
    result = top_activations(vgg11, imgs, ["relu3_1"], k=2, channels=[1, 2], rule="guided")
    for hits in result.layers["relu3_1"].hits:
        assert len(hits) == 2
        for h in hits:
            top, left, bottom, right = h.box
            assert h.projection is not None and h.patch is not None
            assert h.projection.shape == h.patch.shape == (3, bottom - top, right - left)
            assert torch.equal(h.patch, imgs[h.source][0, :, top:bottom, left:right])


def test_fewer_images_than_k_and_stopping_early(vgg11: VGG) -> None:
    imgs = _images()[:2]
    result = top_activations(vgg11, imgs, ["relu1_1"], k=5, channels=[0], rule=None)
    assert len(result.layers["relu1_1"].hits[0]) == 2
    stopped = top_activations(vgg11, _images(), ["relu1_1"], k=2, channels=[0], rule=None, batch_size=2,
                              on_step=lambda e: e.iteration >= 4)
    assert stopped.stopped and stopped.images == 4


def test_folder_streams_skips_unreadable_files_and_names_hits(tmp_path: Path, vgg11: VGG) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "sub" / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    folder = ImageFolder(tmp_path, size=24)
    assert len(folder) == 5 and folder[1].shape == (1, 3, 24, 24)
    result = top_activations(vgg11, folder, ["relu2_1"], k=4, channels=[0], rule=None)
    assert folder.skipped == 1 and result.skipped == 1 and result.images == 4
    names = {h.name for h in result.layers["relu2_1"].hits[0]}
    assert names == {f"sub/{i}.png" for i in range(4)}


def test_bad_inputs(tmp_path: Path, vgg11: VGG) -> None:
    with pytest.raises(ValueError, match="holds no images"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="channel 64 is out of range"):
        top_activations(vgg11, _images(), ["relu1_1"], channels=[64])
    with pytest.raises(ValueError, match="no layer 'relu9_1'"):
        top_activations(vgg11, _images(), ["relu9_1"])
    with pytest.raises(ValueError, match="no images"):
        top_activations(vgg11, [], ["relu1_1"])
