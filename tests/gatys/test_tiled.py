"""Tiled optimisation: exact features, Gram matrices, loss and gradient; the optimised image equals the untiled
one; the memory plan; the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.cli.main import main
from stylegram.gatys import GatysOptions, Objective, compute_targets, memory, run, stylize, tiled
from stylegram.losses import functional as losses
from stylegram.losses import guided
from stylegram.nets.vgg import VGG
from stylegram.optim import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # small tiles: one thread is faster on a shared machine

PAPER = {"content_layers": ("relu4_2",), "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}


def _images(h: int = 150, w: int = 203) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, 120, 130, generator=g)
    return content, style, torch.rand(1, 3, h, w, generator=g)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_receptive_field_and_margin() -> None:
    assert tiled.receptive_field(["relu1_1"]) == (3, 1)
    assert tiled.receptive_field(["relu5_1", "relu1_1"]) == (132, 16)
    assert tiled.receptive_field(["relu4_2"]) == (76, 8)
    assert tiled.margin_for(["relu4_2", "relu5_1"]) == (80, 16)


@pytest.mark.parametrize("shift", [0, 1, -1])
def test_boxes_partition_the_image_on_the_pooling_grid(shift: int) -> None:
    tiling = tiled.Tiling(core=64, margin=80, align=16)
    covered = np.zeros((150, 203), dtype=int)
    for b in tiled.boxes(150, 203, tiling, shift):
        covered[b.y0:b.y1, b.x0:b.x1] += 1
        assert b.y0 % 16 == 0 and b.x0 % 16 == 0 and (b.y1 % 16 == 0 or b.y1 == 150)
        assert (b.iy0, b.ix0) == (max(0, b.y0 - 80), max(0, b.x0 - 80))
        assert b.y1 - b.y0 <= 64 + 16 and b.x1 - b.x0 <= 64 + 16  # balanced cuts, moved by one stride at most
    assert (covered == 1).all()
    cuts = {s: sorted({b.x0 for b in tiled.boxes(150, 203, tiling, s)}) for s in tiled.SHIFTS}
    assert cuts[0] != cuts[1] != cuts[-1]  # the cuts move between evaluations
    assert tiled.largest_input(150, 203, tiling)[1] <= 64 + 16 + 2 * 80


def test_cuts_stay_on_the_grid_for_any_length() -> None:
    for length in range(1, 200):
        for core in (16, 32, 48, 64):
            for shift in tiled.SHIFTS:
                cuts = tiled._cuts(length, core, 16, shift)
                assert cuts[0] == 0 and cuts[-1] == length and cuts == sorted(set(cuts))
                assert all(c % 16 == 0 for c in cuts[:-1]), (length, core, shift, cuts)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_tiled_features_equal_the_whole_image_s(pooling: str) -> None:
    torch.manual_seed(3)
    vgg = VGG("vgg16", pooling=pooling).freeze()  # type: ignore[arg-type]
    x, _, _ = _images()
    layers = ("relu1_1", "relu3_1", "relu4_2", "relu5_1")
    margin, align = tiled.margin_for(layers)
    whole = vgg(x, layers)
    parts = tiled.feature_maps(vgg, x, layers, tiled.Tiling(48, margin, align), "float32")
    for k in layers:
        assert parts[k].shape == whole[k].shape
        assert _rel(parts[k], whole[k]) < 1e-5, k
    # One stride less margin than the rule gives is still exact (64 px was measured as the least for relu5_1) …
    narrow = tiled.feature_maps(vgg, x, ["relu5_1"], tiled.Tiling(48, margin - 16, align), "float32")
    assert _rel(narrow["relu5_1"], whole["relu5_1"]) < 1e-5
    # … and a margin too small is not: the margin is what makes tiles exact.
    too_small = tiled.feature_maps(vgg, x, ["relu5_1"], tiled.Tiling(48, margin - 32, align), "float32")
    assert _rel(too_small["relu5_1"], whole["relu5_1"]) > 1e-4


def test_tiled_gram_matrices_with_and_without_guides(random_vgg: VGG) -> None:
    x, _, _ = _images()
    layers = PAPER["style_layers"]
    tiling = tiled.Tiling(64, *tiled.margin_for(layers))
    grams = tiled.gram_matrices(random_vgg, x, layers, tiling, "float32", shift=1)
    whole = random_vgg(x, layers)
    for k in layers:
        assert _rel(grams[k], losses.gram_matrix(whole[k])) < 1e-5
    mask = torch.zeros(2, 1, 150, 203)
    mask[0, :, :, :90], mask[1, :, :, 90:] = 1, 0.5
    guides = {k: guided.guides(mask, whole[k].shape) for k in layers}
    guided_grams = tiled.gram_matrices(random_vgg, x, layers, tiling, "float32", guides=guides)
    for k in layers:
        assert guided_grams[k].shape == (2, whole[k].shape[1], whole[k].shape[1])
        assert _rel(guided_grams[k], losses.gram_matrix(whole[k] * guides[k])) < 1e-5


@pytest.mark.parametrize("masked", [False, True])
def test_tiled_loss_and_gradient_equal_the_untiled(random_vgg: VGG, tmp_path: Path, masked: bool) -> None:
    content, style, start = _images()
    options = GatysOptions(precision="float32", tv_weight=0.5, style_weight=1e3, **PAPER)  # type: ignore[arg-type]
    masks = None
    if masked:
        left = np.zeros((150, 203), dtype=np.uint8)
        left[:, :100] = 255
        Image.fromarray(left).save(tmp_path / "left.png")
        Image.fromarray(255 - left).save(tmp_path / "right.png")
        options = options.replace(content_masks=(str(tmp_path / "left.png"), str(tmp_path / "right.png")))
        masks = guided.load_masks(options.content_masks or (), None, content, [style, style.flip(-1)])
    styles = [style, style.flip(-1)] if masked else [style]
    tiling = tiled.Tiling(64, *tiled.margin_for(PAPER["style_layers"]))
    targets = compute_targets(random_vgg, content, styles, options, masks)
    tiled_targets = compute_targets(random_vgg, content, styles, options, masks, tiling)
    for k, v in targets.style.items():
        assert _rel(tiled_targets.style[k], v) < 1e-5
    for k, v in targets.content.items():
        assert _rel(tiled_targets.content[k], v) < 1e-5

    a, b = start.clone().requires_grad_(True), start.clone().requires_grad_(True)
    expected = Objective(random_vgg, targets, options).value_and_grad(a)
    objective = tiled.TiledObjective(random_vgg, tiled_targets, options, tiling)
    got = objective.value_and_grad(b)
    assert list(got) == list(expected) == ["content", "style", "tv", "total"]
    for k, v in expected.items():
        assert abs(float(got[k]) - float(v)) <= 1e-5 * abs(float(v)), k
    assert a.grad is not None and b.grad is not None
    assert _rel(b.grad, a.grad) < 1e-5
    objective.value_and_grad(b)  # the next evaluation cuts elsewhere: same gradient
    assert _rel(b.grad, a.grad) < 1e-5


def test_a_tiled_run_ends_with_the_untiled_image(random_vgg: VGG) -> None:
    content, style, _ = _images(96, 120)
    options = GatysOptions(size=120, iterations=12, precision="float32", init="noise", style_weight=1e3,
                           content_layers=("relu3_1",), style_layers=("relu1_1", "relu2_1", "relu3_1"))
    untiled = run(random_vgg, content, [style], options)
    tiles = run(random_vgg, content, [style], options.replace(tile_size=32))
    assert untiled.tiles == 1 and tiles.tiles == 12
    assert tiles.iterations == untiled.iterations == 12
    assert abs(tiles.losses["total"] - untiled.losses["total"]) <= 1e-3 * untiled.losses["total"]
    assert float((tiles.image - untiled.image).abs().max()) < 2e-3


def test_plan_tiles_only_what_does_not_fit() -> None:
    options = GatysOptions(size=1024, iterations=100, precision="bfloat16")
    roomy = memory.plan(options, (1024, 768), 64 * 2**30)
    assert roomy is not None and roomy.tiling is None and roomy.history == 100
    budget = 3 * 2**30  # the L-BFGS history alone takes 1.9 GB
    assert memory.estimate(options, (1024, 768)).total > budget
    tight = memory.plan(options, (1024, 768), budget)
    assert tight is not None and tight.tiling is not None
    assert tight.estimate.total <= budget and tight.tiling.core % 16 == 0 and tight.tiling.margin == 80
    bigger = memory.estimate(options, (1024, 768), tiling=tiled.Tiling(tight.tiling.core + 16, 80, 16))
    assert bigger.total > budget  # the largest tiles that fit
    assert memory.plan(options, (1024, 768), 2 * 2**30) is None  # not even the smallest tiles
    forced = memory.plan(options.replace(tile_size=300), (1024, 768), None)
    assert forced is not None and forced.tiling is not None and forced.tiling.core == 288


def test_history_is_cut_for_very_large_images() -> None:
    assert memory.history_size(GatysOptions(), 768, 1024) == 100
    assert memory.history_size(GatysOptions(), 1536, 2048) == 2 * 2**30 // (2 * 3 * 1536 * 2048 * 4)
    assert memory.history_size(GatysOptions(), 3072, 4096) == memory.MIN_HISTORY
    assert memory.history_size(GatysOptions(lbfgs_history=7), 3072, 4096) == 7
    with pytest.raises(ValueError, match="tile-size"):
        GatysOptions(tile_size=8)


def test_cli_runs_in_tiles_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    out = tmp_path / "out.png"
    code = main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(out), "--size", "64",
                 "--iterations", "3", "--tile-size", "32", "--style-layers", "relu1_1,relu2_1",
                 "--content-layers", "relu2_1", "--device", "cpu", "--precision", "float32"])
    assert code == 0 and Image.open(out).size == (64, 48)
    assert "64×48 px runs in 4 tiles" in capsys.readouterr().err


def test_stylize_refuses_a_budget_not_even_tiles_fit(weights_cache: str) -> None:
    picture = Image.fromarray(np.full((48, 64, 3), 128, dtype=np.uint8))
    with pytest.raises(ValueError, match="not even tiles fit in the 10 MiB available"):
        stylize(picture, picture, size=64, iterations=1, max_memory="10MiB", device="cpu")


def test_a_resumed_tiled_run_ends_with_the_same_image(random_vgg: VGG, tmp_path: Path) -> None:
    content, style, _ = _images(64, 80)
    options = GatysOptions(size=80, iterations=12, precision="float32", tile_size=32, style_weight=1e3,
                           content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    straight = run(random_vgg, content, [style], options, checkpointing=checkpoint.Checkpointing(tmp_path / "a", 5))
    stopped = run(random_vgg, content, [style], options, checkpointing=checkpoint.Checkpointing(tmp_path / "b", 5),
                  on_step=lambda e: e.iteration >= 8)
    state = checkpoint.load(tmp_path / "b", options.to_dict())
    resumed = run(random_vgg, content, [style], options, checkpointing=checkpoint.Checkpointing(tmp_path / "b", 5),
                  resume=state)
    assert stopped.stopped and resumed.iterations == 12 and resumed.tiles == straight.tiles > 1
    assert torch.equal(resumed.image, straight.image)  # the cuts continue where they were, as in the straight run
