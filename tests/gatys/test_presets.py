"""The relative objective, style strength and presets: one number means the same balance at every size.

* strength → β is deterministic, monotone, and the presets are fixed strengths;
* on the relative objective each term is divided by its target's energy, so the ratio of the style term to the
  content term at a comparable point hardly moves between 128 and 256 px, while the paper's moves with the
  number of positions (checked with the real VGG16: random weights have no meaningful activation levels);
* the paper preset is the paper's objective exactly, and the old flags still set α, β and λ_tv.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from stylegram.cli.common import options_from
from stylegram.cli.main import build_parser
from stylegram.core import images
from stylegram.core.samples import demo_content, generated_painting
from stylegram.gatys import GatysOptions, Objective, compute_targets, prepare
from stylegram.gatys.options import PAPER_STYLE_WEIGHT, PRESETS, style_weight_for
from stylegram.losses import functional as losses
from stylegram.nets.vgg import VGG


def test_strength_maps_to_beta_monotonically_and_presets_are_strengths() -> None:
    betas = [style_weight_for(s / 10) for s in range(11)]
    assert betas == sorted(betas) and len(set(betas)) == 11
    assert style_weight_for(0.5) == style_weight_for(0.5)  # deterministic
    ratios = [b / a for a, b in itertools.pairwise(betas)]
    assert max(ratios) == pytest.approx(min(ratios))  # log-linear: equal steps are equal ratios
    light, balanced, bold = (GatysOptions.from_preset(n) for n in ("light", "balanced", "bold"))
    assert light.beta < balanced.beta < bold.beta
    assert balanced == GatysOptions()  # the default is the balanced preset
    with pytest.raises(ValueError, match="preset"):
        GatysOptions.from_preset("loud")
    with pytest.raises(ValueError, match="style-strength"):
        GatysOptions(style_strength=1.5)


def test_the_paper_preset_is_the_papers_objective_exactly(random_vgg: VGG) -> None:
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 24, 32, generator=g), torch.rand(1, 3, 28, 28, generator=g)
    o = GatysOptions.from_preset("paper", content_layers=("relu2_2",), style_layers=("relu1_1", "relu2_1"), size=32,
                                 precision="float32")  # exactly: bfloat16 hardware would round it
    assert (o.objective, o.beta, o.tv, o.init) == ("paper", PAPER_STYLE_WEIGHT, 0.0, "noise")
    t = compute_targets(random_vgg, content, [style], o)
    x = torch.rand_like(content)
    terms = Objective(random_vgg, t, o)(x)
    f = random_vgg(x, ["relu2_2", "relu1_1", "relu2_1"])
    c = losses.content_loss(f["relu2_2"], t.content["relu2_2"])
    s = sum(0.5 * losses.style_layer_loss(losses.gram_matrix(f[k]), t.style[k]) for k in ("relu1_1", "relu2_1"))
    assert terms["content"].item() == pytest.approx(c.item(), rel=1e-6)
    assert terms["style"].item() == pytest.approx(PAPER_STYLE_WEIGHT * float(s), rel=1e-6)
    assert "tv" not in terms


def test_old_flags_still_set_alpha_beta_and_tv() -> None:
    ns = build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--style-weight", "30",
                                    "--content-weight", "2", "--tv-weight", "0", "--objective", "paper"])
    o = options_from(ns, GatysOptions())
    assert (o.content_weight, o.beta, o.tv, o.objective) == (2.0, 30.0, 0.0, "paper")
    ns = build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--style-strength", "0.8"])
    assert options_from(ns, GatysOptions()).beta == GatysOptions.from_preset("bold").beta == style_weight_for(0.8)
    assert set(PRESETS) == {"light", "balanced", "bold", "paper"}


def _balance(vgg: VGG, options: GatysOptions, size: int) -> float:
    """style term / content term at the midpoint between photo and painting, at ``size`` px."""
    o = options.replace(size=size, precision="float32", content_layers=("relu4_2",),
                        style_layers=("relu1_1", "relu2_1", "relu3_1"))
    content, styles = prepare(demo_content(), [generated_painting(256, seed=7)], o)
    targets = compute_targets(vgg, content, styles, o)
    painting = torch.nn.functional.interpolate(styles[0], size=content.shape[-2:], mode="bilinear")
    with torch.no_grad():
        terms = Objective(vgg, targets, o)(0.5 * content + 0.5 * painting)
    return float(terms["style"] / terms["content"])


@pytest.mark.slow
def test_one_strength_gives_one_balance_at_two_sizes(real_vgg: VGG) -> None:
    relative = [_balance(real_vgg, GatysOptions(), size) for size in (128, 256)]
    paper = [_balance(real_vgg, GatysOptions(objective="paper", style_weight=30.0), size) for size in (128, 256)]
    drift_relative = max(relative) / min(relative)
    drift_paper = max(paper) / min(paper)
    assert drift_relative < 1.5, relative
    assert drift_paper > 2.5 * drift_relative, (paper, relative)
    assert images.to_tensor(demo_content()).shape[1] == 3


def test_the_preset_flag_sets_the_base_and_other_flags_apply_on_top() -> None:
    from stylegram.cli.gatys import DEMO_DEFAULTS, _base

    ns = build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--preset", "bold",
                                    "--tv-weight", "0.2"])
    o = options_from(ns, _base(ns, GatysOptions()))
    assert (o.style_strength, o.tv) == (0.8, 0.2)
    ns = build_parser().parse_args(["demo", "--preset", "paper"])
    o = options_from(ns, _base(ns, DEMO_DEFAULTS))
    expected = ("paper", "noise", DEMO_DEFAULTS.size, DEMO_DEFAULTS.iterations)
    assert (o.objective, o.init, o.size, o.iterations) == expected


def _per_pair_tv(x: torch.Tensor, norm: str) -> float:
    _, c, h, w = x.shape
    return float(losses.total_variation(x, norm)) / (c * ((h - 1) * w + h * (w - 1)))


@pytest.mark.parametrize("size", [(24, 32), (48, 64)])
def test_the_smoothness_weight_is_relative_to_the_photo_or_to_the_painting(random_vgg: VGG, size: tuple[int, int]
                                                                           ) -> None:
    g = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, *size, generator=g)
    rough = torch.rand(1, 3, 40, 40, generator=g)  # a painting with much fine texture
    smooth = torch.nn.functional.avg_pool2d(rough, 5, stride=1, padding=2)  # one with little
    h, w = size
    pairs = 3 * ((h - 1) * w + h * (w - 1))
    base = GatysOptions(content_layers=("relu2_2",), style_layers=("relu1_1",), tv_weight=0.4, tv_reference="content")
    by_photo = compute_targets(random_vgg, content, [rough], base).tv_weight
    assert by_photo == pytest.approx(0.4 / float(losses.total_variation(content, "l1-chroma")), rel=1e-6)
    o = base.replace(tv_reference="style")
    on_rough = compute_targets(random_vgg, content, [rough], o).tv_weight
    on_smooth = compute_targets(random_vgg, content, [smooth], o).tv_weight
    assert on_rough == pytest.approx(0.4 / (_per_pair_tv(rough, "l1-chroma") * pairs), rel=1e-6)
    # the smoother painting asks for a smoother output: its weight is larger by its TV's ratio
    assert on_smooth / on_rough == pytest.approx(_per_pair_tv(rough, "l1-chroma") / _per_pair_tv(smooth, "l1-chroma"),
                                                 rel=1e-6)
    assert on_smooth > 2 * on_rough
    # two paintings: their blend weights average the per-pixel variation
    both = compute_targets(random_vgg, content, [rough, smooth], o.replace(style_blend_weights=(3.0, 1.0))).tv_weight
    mean = (3 * _per_pair_tv(rough, "l1-chroma") + _per_pair_tv(smooth, "l1-chroma")) / 4
    assert both == pytest.approx(0.4 / (mean * pairs), rel=1e-6)
    flat = torch.full((1, 3, 40, 40), 0.5)
    assert compute_targets(random_vgg, content, [flat], o).tv_weight == pytest.approx(0.4 * 255 / pairs, rel=1e-6)
