"""Gatys style transfer: options, the optimisation loop, reproducibility, colour control, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stylegram.core.events import StepEvent
from stylegram.gatys import GatysOptions, Objective, compute_targets, run
from stylegram.gatys.run import initial_image
from stylegram.losses import color, guided
from stylegram.losses import functional as losses
from stylegram.nets.vgg import VGG
from stylegram.optim import checkpoint

SMALL = {"content_layers": ("relu2_2",), "style_layers": ("relu1_1", "relu2_1"), "size": 32}


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 24, 32, generator=g), torch.rand(1, 3, 28, 28, generator=g)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="size"):
        GatysOptions(size=4)
    with pytest.raises(ValueError, match="style layer weights"):
        GatysOptions(style_layer_weights=(1.0,))
    with pytest.raises(ValueError, match="content-weight"):
        GatysOptions(content_weight=-1)
    with pytest.raises(ValueError, match="optimizer"):
        GatysOptions(optimizer="sgd")  # type: ignore[arg-type]
    assert GatysOptions().replace(size=64).size == 64


def test_defaults_are_the_papers_layers() -> None:
    o = GatysOptions()
    assert o.content_layers == ("relu4_2",)
    assert o.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert o.pooling == "max" and o.optimizer == "lbfgs" and o.tv_norm == "l1-chroma" and o.style_strength == 0.6
    assert (o.init, o.tv_reference) == ("palette", "style")
    assert o.tv == 0.4
    paper = GatysOptions.from_preset("paper")
    assert paper.pooling == "avg" and paper.tv == 0.0 and paper.init == "noise"


def test_objective_is_alpha_content_plus_beta_style(random_vgg: VGG) -> None:
    content, style = _images()
    o = GatysOptions(objective="paper", content_weight=3.0, style_weight=7.0, tv_weight=0.5, precision="float32",
                     **SMALL)
    t = compute_targets(random_vgg, content, [style], o)
    x = torch.rand_like(content)
    terms = Objective(random_vgg, t, o)(x)
    feats = random_vgg(x, ["relu2_2", "relu1_1", "relu2_1"])
    c = losses.content_loss(feats["relu2_2"], t.content["relu2_2"])
    s = sum(0.5 * losses.style_layer_loss(losses.gram_matrix(feats[k]), t.style[k]) for k in ("relu1_1", "relu2_1"))
    assert terms["content"].item() == pytest.approx(3.0 * c.item(), rel=1e-5)
    assert terms["style"].item() == pytest.approx(7.0 * float(s), rel=1e-5)
    assert terms["tv"].item() == pytest.approx(0.5 * losses.total_variation(x, o.tv_norm).item(), rel=1e-5)
    assert terms["total"].item() == pytest.approx(sum(terms[k].item() for k in ("content", "style", "tv")), rel=1e-5)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_counts_loss_evaluations_and_lowers_the_loss(random_vgg: VGG, optimizer: str) -> None:
    content, style = _images()
    events: list[StepEvent] = []
    o = GatysOptions(iterations=25, optimizer=optimizer, objective="paper", style_weight=30.0,  # type: ignore[arg-type]
                     **SMALL)
    result = run(random_vgg, content, [style], o, on_step=events.append)
    assert [e.iteration for e in events] == list(range(1, 26))
    assert result.iterations == 25 and not result.stopped
    assert events[-1].losses["total"] < 0.5 * events[0].losses["total"]
    # The image returned is the best one evaluated, and its losses are reported.
    assert result.losses["total"] == min(e.losses["total"] for e in events)
    assert result.image.shape == content.shape
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0


def test_on_step_can_stop_the_run(random_vgg: VGG) -> None:
    content, style = _images()
    result = run(random_vgg, content, [style], GatysOptions(iterations=50, **SMALL), on_step=lambda e: e.iteration == 7)
    assert result.stopped and result.iterations == 7


def test_same_seed_same_pixels_and_other_seed_other_pixels(random_vgg: VGG) -> None:
    content, style = _images()
    o = GatysOptions(iterations=8, seed=5, init="noise", **SMALL)
    a = run(random_vgg, content, [style], o).image
    b = run(random_vgg, content, [style], o).image
    c = run(random_vgg, content, [style], o.replace(seed=6)).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_blended_styles_target_the_weighted_gram_mean(random_vgg: VGG) -> None:
    content, s1 = _images(1)
    _, s2 = _images(2)
    o = GatysOptions(style_blend_weights=(3.0, 1.0), precision="float32", **SMALL)
    t = compute_targets(random_vgg, content, [s1, s2], o)
    g1 = losses.gram_matrix(random_vgg(s1, ["relu1_1"])["relu1_1"])
    g2 = losses.gram_matrix(random_vgg(s2, ["relu1_1"])["relu1_1"])
    assert torch.allclose(t.style["relu1_1"], 0.75 * g1 + 0.25 * g2, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="blend weights"):
        compute_targets(random_vgg, content, [s1], o)


def test_original_colors_keep_the_contents_chrominance(random_vgg: VGG) -> None:
    content, style = _images()
    o = GatysOptions(iterations=10, original_colors=True, init="content", **SMALL)
    out = run(random_vgg, content, [style], o).image
    iq_out, iq_content = color.rgb_to_yiq(out)[:, 1:], color.rgb_to_yiq(content)[:, 1:]
    # Equal up to the clamp into [0, 1] after putting the colours back.
    assert (iq_out - iq_content).abs().mean() < 0.02


def test_luminance_matching_moments() -> None:
    content, style = _images()
    matched = color.match_luminance(style * 0.3, content)
    y, yc = color.luminance(matched), color.luminance(content)
    assert y.mean().item() == pytest.approx(yc.mean().item(), abs=2e-3)
    assert y.std().item() == pytest.approx(yc.std().item(), rel=2e-2)
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(content)), content, atol=1e-5)


@pytest.mark.slow
def test_real_weights_end_to_end_style_loss_falls_far_below_the_contents(real_vgg: VGG) -> None:
    """With the real VGG16, 60 L-BFGS evaluations from the content take its style loss far down."""
    from PIL import Image
    from skimage import data

    from stylegram.core import images
    from stylegram.core.samples import generated_painting

    o = GatysOptions(size=64, iterations=60, init="content")
    content = images.to_tensor(images.resize_longest(Image.fromarray(data.chelsea()), 64))
    style = images.to_tensor(generated_painting(96, seed=3))
    result = run(real_vgg, content, [style], o)
    objective = Objective(real_vgg, compute_targets(real_vgg, content, [style], o), o)
    with torch.no_grad():
        before, after = objective(content), objective(result.image)
    assert after["style"].item() < 0.1 * before["style"].item()
    assert after["total"].item() < before["total"].item()



def test_color_histogram_transfer_moves_the_styles_colours_to_the_contents() -> None:
    g = torch.Generator().manual_seed(3)
    content = torch.rand(1, 3, 40, 40, generator=g) * torch.tensor([0.3, 0.6, 0.2]).view(1, 3, 1, 1) + 0.2
    style = torch.rand(1, 3, 30, 50, generator=g) * torch.tensor([0.5, 0.1, 0.8]).view(1, 3, 1, 1)
    out = color.match_color_histogram(style, content)
    assert out.shape == style.shape
    mean_c, cov_c = color._mean_cov(content)
    mean_o, cov_o = color._mean_cov(out)
    assert torch.allclose(mean_o, mean_c, atol=1e-3)
    assert torch.allclose(cov_o, cov_c, atol=2e-3)
    # Structure is kept: the recoloured style is an affine function of the original, pixel by pixel.
    grey_in, grey_out = style.mean(1).flatten(), out.mean(1).flatten()
    assert torch.corrcoef(torch.stack([grey_in, grey_out]))[0, 1].abs() > 0.3


def test_palette_start_is_the_photo_in_the_paintings_colours(random_vgg: VGG) -> None:
    g = torch.Generator().manual_seed(5)
    content = torch.rand(1, 3, 40, 40, generator=g) * 0.3 + 0.6  # a bright photo
    style = torch.rand(1, 3, 30, 50, generator=g) * torch.tensor([0.2, 0.1, 0.3]).view(1, 3, 1, 1)  # a dark painting
    start = initial_image("palette", content, [style], seed=0)
    assert start.shape == content.shape
    mean_s, cov_s = color._mean_cov(style)
    mean_p, cov_p = color._mean_cov(start)
    assert torch.allclose(mean_p, mean_s, atol=1e-3)
    assert torch.allclose(cov_p, cov_s, atol=2e-3)
    # The layout is the photo's: the start is an affine recolouring of it, pixel by pixel.
    assert torch.corrcoef(torch.stack([content.mean(1).flatten(), start.mean(1).flatten()]))[0, 1].abs() > 0.3
    # Only the start moves: the content target stays the photo, so the first evaluation's content term is
    # the recoloured start's distance to the photo, not zero.
    o = GatysOptions(init="palette", precision="float32", iterations=1, **SMALL)
    first = run(random_vgg, content, [style], o).losses
    assert first["content"] > 0
    assert run(random_vgg, content, [style], o.replace(init="content")).losses["content"] == 0


def test_color_transfer_option_recolours_the_style_before_the_targets(random_vgg: VGG) -> None:
    content, style = _images()
    content = content * 0.3  # dark content, bright style: recolouring changes the style targets a lot
    o = GatysOptions(color_transfer="histogram", precision="float32", init="content", iterations=1, **SMALL)
    plain = o.replace(color_transfer="none")
    recoloured_style = color.match_color_histogram(style, content)
    recoloured = Objective(random_vgg, compute_targets(random_vgg, content, [recoloured_style], plain), plain)
    original = Objective(random_vgg, compute_targets(random_vgg, content, [style], plain), plain)
    # One evaluation, at the content image: its loss is the one against the recoloured style's targets.
    result = run(random_vgg, content, [style], o)
    with torch.no_grad():
        expected, other = recoloured(content)["total"].item(), original(content)["total"].item()
    assert result.losses["total"] == pytest.approx(expected, rel=1e-5)
    assert abs(other - expected) > 0.05 * expected
    with pytest.raises(ValueError, match="color-transfer"):
        GatysOptions(color_transfer="lab")  # type: ignore[arg-type]


def test_masks_give_each_half_its_own_style(random_vgg: VGG, tmp_path: Path) -> None:
    """Two styles (reddish and bluish) on a half/half mask: each half moves towards its own style."""
    from PIL import Image

    h, w = 24, 32
    left = np.zeros((h, w), dtype=np.uint8)
    left[:, : w // 2] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    g = torch.Generator().manual_seed(0)
    red = torch.rand(1, 3, 28, 28, generator=g) * torch.tensor([1.0, 0.2, 0.2]).view(1, 3, 1, 1)
    blue = torch.rand(1, 3, 28, 28, generator=g) * torch.tensor([0.2, 0.2, 1.0]).view(1, 3, 1, 1)
    content = torch.full((1, 3, h, w), 0.5)
    o = GatysOptions(iterations=40, content_weight=0.0, style_layers=("relu1_1", "relu2_1"), content_layers=(),
                     precision="float32", content_masks=(str(tmp_path / "left.png"), str(tmp_path / "right.png")))
    out = run(random_vgg, content, [red, blue], o).image
    lhs, rhs = out[..., : w // 2 - 2], out[..., w // 2 + 2 :]
    assert lhs[:, 0].mean() > rhs[:, 0].mean() + 0.05  # red on the left
    assert rhs[:, 2].mean() > lhs[:, 2].mean() + 0.05  # blue on the right
    # Guided targets are one Gram matrix per region.
    masks = guided.load_masks(o.content_masks or (), None, content, [red, blue])
    assert compute_targets(random_vgg, content, [red, blue], o, masks).style["relu1_1"].shape == (2, 64, 64)
    with pytest.raises(ValueError, match="content masks"):
        run(random_vgg, content, [red], o)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_resume_ends_with_the_same_image_as_an_uninterrupted_run(
    random_vgg: VGG, tmp_path: Path, optimizer: str
) -> None:
    content, style = _images()
    o = GatysOptions(iterations=30, optimizer=optimizer, precision="float32", **SMALL)  # type: ignore[arg-type]
    straight = run(random_vgg, content, [style], o, checkpointing=checkpoint.Checkpointing(tmp_path / "a.ckpt", 10))
    # Interrupted at evaluation 17: the last checkpoint holds the state at (about) 10 evaluations.
    stopped = run(random_vgg, content, [style], o, checkpointing=checkpoint.Checkpointing(tmp_path / "b.ckpt", 10),
                  on_step=lambda e: e.iteration >= 17)
    assert stopped.stopped and stopped.iterations == 17
    state = checkpoint.load(tmp_path / "b.ckpt", o.to_dict())
    assert 10 <= state["count"] < 17
    resumed = run(random_vgg, content, [style], o, checkpointing=checkpoint.Checkpointing(tmp_path / "b.ckpt", 10),
                  resume=state)
    assert resumed.iterations == 30
    assert torch.equal(resumed.image, straight.image)
    with pytest.raises(checkpoint.CheckpointError, match="other options"):
        checkpoint.load(tmp_path / "b.ckpt", o.replace(seed=1).to_dict())
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable"):
        checkpoint.load(tmp_path / "bad.ckpt", o.to_dict())
