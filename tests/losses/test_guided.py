"""Colour-indexed masks for spatial control: parsing colours, nearest-colour regions, errors, and a real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from PIL import Image

from stylegram.core import images
from stylegram.gatys import GatysOptions, run
from stylegram.losses import guided
from stylegram.nets.vgg import VGG

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _halves(h: int, w: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 2], a[:, w // 2 :] = left, right
    return a


def _save(a: npt.NDArray[np.uint8], path: Path, **kw: int) -> str:
    Image.fromarray(a).save(path, **kw)
    return str(path)


def _tensors(h: int, w: int, k: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return torch.rand(1, 3, h, w), [torch.rand(1, 3, 10 + i, 12) for i in range(k)]


def test_colours_parse_from_hex_and_names() -> None:
    for text in ("ff0000", "#ff0000", "#F00", "f00", "red", " Red "):
        assert guided.parse_color(text) == RED
    assert guided.parse_color("blue") == BLUE and guided.parse_color("yellow") == (255, 255, 0)
    assert guided.parse_color("cyan") == (0, 255, 255) and guided.parse_color("magenta") == (255, 0, 255)
    assert guided.parse_color("white") == WHITE and guided.parse_color("black") == (0, 0, 0)
    assert guided.parse_color("lime") == (0, 255, 0) and guided.parse_color("green") == (0, 128, 0)  # as in CSS
    for bad in ("", "nope", "#ff00", "ff00000", "#ff000080", "#gg0000"):
        with pytest.raises(ValueError, match=r"not a colour.*hex") as caught:
            guided.parse_color(bad)
        assert repr(bad) in str(caught.value)
    assert guided.parse_colors(["red", "00f"]) == [RED, BLUE]
    with pytest.raises(ValueError, match="'red' and '#f00' are the same colour #ff0000"):
        guided.parse_colors(["red", "blue", "#f00"])


def test_two_colour_mask_gives_two_complementary_masks(tmp_path: Path) -> None:
    path = _save(_halves(40, 60, RED, BLUE), tmp_path / "mask.png")
    content, styles = _tensors(12, 16, 2)
    masks = guided.load_masks([path], None, content, styles, colors=["red", "#00f"])
    assert masks.content.shape == (2, 1, 12, 16)
    torch.testing.assert_close(masks.content.sum(dim=0), torch.ones(1, 12, 16))  # complementary, edges included
    left, right = masks.content[0, 0], masks.content[1, 0]
    torch.testing.assert_close(left[:, :7], torch.ones(12, 7))
    torch.testing.assert_close(right[:, 9:], torch.ones(12, 7))
    assert torch.all(left[:, 9:] == 0) and torch.all(right[:, :7] == 0)
    assert 0 < left[0, 7] < 1  # a soft edge from resizing the one-hot maps, not blended colours
    assert [tuple(m.shape) for m in masks.style] == [(1, 1, 10, 12), (1, 1, 11, 12)]
    assert all(bool(torch.all(m == 1)) for m in masks.style)  # no style masks: the whole style image
    # One colour-indexed image per style works too: each contributes its own colour's region.
    per_style = guided.load_masks([path, path], None, content, styles, colors=["red", "blue"])
    torch.testing.assert_close(per_style.content, masks.content)
    # Without colours the same image is a greyscale mask (red and blue are both a third grey): unchanged behaviour.
    grey = guided.load_masks([path, path], None, content, styles)
    torch.testing.assert_close(grey.content, torch.full_like(grey.content, 85 / 255), atol=1e-3, rtol=0)


def test_far_colours_are_in_no_region_and_blends_go_to_the_nearest(tmp_path: Path) -> None:
    a = np.zeros((8, 10, 3), dtype=np.uint8)
    a[:, :4], a[:, 4], a[:, 5], a[:, 6:8], a[:, 8:] = RED, (150, 0, 105), (100, 0, 155), WHITE, (128, 128, 128)
    regions = guided.color_regions(images.to_tensor(Image.fromarray(a)), [RED, BLUE])[:, 0, 0]
    # Red; an anti-aliased red/blue edge split by nearness; white and grey, far from both, in neither.
    assert regions.tolist() == [[1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]]
    # A dark red is within the tolerance of red; black is 255 away.
    a[:, 6:8], a[:, 8:] = (200, 20, 30), (0, 0, 0)
    regions = guided.color_regions(images.to_tensor(Image.fromarray(a)), [RED, BLUE])[:, 0, 0]
    assert regions[0].tolist() == [1, 1, 1, 1, 1, 0, 1, 1, 0, 0]


def test_jpeg_noise_still_separates_the_colours(tmp_path: Path) -> None:
    a = np.zeros((48, 64, 3), dtype=np.uint8)
    a[:, :20], a[:, 20:44], a[:, 44:] = RED, BLUE, (255, 255, 0)
    a[16:32, 8:56] = WHITE  # a band in no region
    exact = guided.color_regions(images.to_tensor(Image.fromarray(a)), [RED, BLUE, (255, 255, 0)])
    noisy_path = _save(a, tmp_path / "mask.jpg", quality=40)
    noisy = images.to_tensor(images.load_image(noisy_path))
    assert (noisy * 255 - torch.from_numpy(a).permute(2, 0, 1)).abs().max() > 20  # the JPEG really is noisy
    found = guided.color_regions(noisy, [RED, BLUE, (255, 255, 0)])
    # Identical away from edges (JPEG's 8×8 blocks and chroma subsampling smear a couple of pixels).
    interior = torch.ones(48, 64, dtype=torch.bool)
    for col in (20, 44):
        interior[:, col - 3 : col + 3] = False
    for row in (16, 32):
        interior[row - 3 : row + 3, 5:59] = False
    interior[:, 5:11] = interior[:, 53:59] = False
    assert torch.equal(found[:, 0][:, interior], exact[:, 0][:, interior])
    assert found[:, 0][:, interior].sum() == exact[:, 0][:, interior].sum() > 0


def test_empty_region_names_the_colour_the_file_and_what_it_holds(tmp_path: Path) -> None:
    path = _save(_halves(20, 20, RED, BLUE), tmp_path / "mask.png")
    content, styles = _tensors(12, 16, 2)
    with pytest.raises(images.ImageError) as caught:
        guided.load_masks([path], None, content, styles, colors=["red", "lime"])
    message = str(caught.value)
    assert "mask.png" in message and "'lime' (#00ff00)" in message and "style 2" in message
    assert "#ff0000 (50%)" in message and "#0000ff (50%)" in message
    assert isinstance(caught.value, ValueError)  # ImageError: the CLI answers it with exit code 2
    with pytest.raises(ValueError, match="'purple-ish' is not a colour"):
        guided.load_masks([path], None, content, styles, colors=["red", "purple-ish"])
    with pytest.raises(ValueError, match="3 mask colours for 2 style images"):
        guided.load_masks([path], None, content, styles, colors=["red", "blue", "white"])
    with pytest.raises(ValueError, match="2 content masks for 3 style images"):
        guided.load_masks([path, path], None, *_tensors(12, 16, 3), colors=["red", "blue", "white"])


def test_style_masks_are_colour_indexed_too(tmp_path: Path) -> None:
    content_path = _save(_halves(20, 20, RED, BLUE), tmp_path / "content.png")
    first = _save(_halves(20, 24, RED, (0, 0, 0)), tmp_path / "style-a.png")  # left half of style 1
    second = _save(np.full((22, 24, 3), BLUE, dtype=np.uint8), tmp_path / "style-b.png")  # all of style 2
    content, styles = _tensors(12, 16, 2)
    masks = guided.load_masks([content_path], [first, second], content, styles, colors=["ff0000", "0000ff"])
    a, b = masks.style[0][0, 0], masks.style[1][0, 0]
    torch.testing.assert_close(a[:, :5], torch.ones(10, 5))
    assert torch.all(a[:, 7:] == 0) and torch.all((b - 1).abs() < 1e-6)
    with pytest.raises(images.ImageError, match=r"style-b\.png' has no pixel of colour #ff0000 \(style 1\); its "
                       r"main colours are #0000ff \(100%\)"):
        guided.load_masks([content_path], [second, first], content, styles, colors=["ff0000", "0000ff"])


def test_one_colour_indexed_mask_gives_each_half_its_own_style(
    random_vgg: VGG, tmp_path: Path, one_thread: None
) -> None:
    """Two styles (reddish and bluish) on ONE red/blue mask image: each half moves towards its own style."""
    h, w = 24, 32
    path = _save(_halves(h, w, RED, BLUE), tmp_path / "mask.png")
    g = torch.Generator().manual_seed(0)
    red = torch.rand(1, 3, 28, 28, generator=g) * torch.tensor([1.0, 0.2, 0.2]).view(1, 3, 1, 1)
    blue = torch.rand(1, 3, 28, 28, generator=g) * torch.tensor([0.2, 0.2, 1.0]).view(1, 3, 1, 1)
    content = torch.full((1, 3, h, w), 0.5)
    o = GatysOptions(iterations=40, content_weight=0.0, style_layers=("relu1_1", "relu2_1"), content_layers=(),
                     precision="float32", content_masks=(path,), mask_colors=("ff0000", "0000ff"))
    out = run(random_vgg, content, [red, blue], o).image
    lhs, rhs = out[..., : w // 2 - 2], out[..., w // 2 + 2 :]
    assert lhs[:, 0].mean() > rhs[:, 0].mean() + 0.05  # red on the left
    assert rhs[:, 2].mean() > lhs[:, 2].mean() + 0.05  # blue on the right
    # Swapping the colours swaps the sides.
    swapped = run(random_vgg, content, [red, blue], o.replace(mask_colors=("0000ff", "ff0000"))).image
    assert swapped[..., : w // 2 - 2][:, 2].mean() > swapped[..., w // 2 + 2 :][:, 2].mean() + 0.05
