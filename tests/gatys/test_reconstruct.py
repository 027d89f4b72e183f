"""Reconstructions from white noise, the trade-off grid, and their command-line front ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from stylegram.cli.main import main
from stylegram.core import images
from stylegram.core.events import StepEvent
from stylegram.gatys import GatysOptions
from stylegram.gatys.reconstruct import (
    content_options,
    ratio_options,
    reconstruct_content,
    reconstruct_style,
    style_options,
    style_subsets,
    subset_label,
    tradeoff_grid,
)
from stylegram.nets.vgg import VGG

FAST = GatysOptions(size=32, iterations=12, precision="float32", init="content", content_weight=3.0)


def smooth_image(seed: int = 0, size: tuple[int, int] = (32, 40)) -> torch.Tensor:
    """A structured test image: smooth blobs, so that reconstructions have something to recover."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 4, 5, generator=g)
    return torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)


class Recorder:
    def __init__(self) -> None:
        self.events: list[StepEvent] = []

    def __call__(self, event: StepEvent) -> None:
        self.events.append(event)

    def totals(self, stage: int) -> list[float]:
        return [e.losses["total"] for e in self.events if e.stage == stage]


def test_subsets_and_labels() -> None:
    assert style_subsets((1, 3)) == [("relu1_1",), ("relu1_1", "relu2_1", "relu3_1")]
    assert style_subsets()[-1] == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert style_subsets((2,), ("conv1_1", "pool1", "conv3_3")) == [("conv1_1", "pool1")]
    assert subset_label(("relu3_1",)) == "relu3_1"
    assert subset_label(("relu1_1", "relu2_1", "relu3_1")) == "relu1_1…relu3_1"
    for bad in (0, 6):
        with pytest.raises(ValueError, match="between 1 and 5"):
            style_subsets((bad,))


def test_options_switch_off_the_other_term_and_start_from_noise() -> None:
    c = content_options(FAST, "relu2_1")
    assert (c.content_layers, c.style_layers, c.content_weight, c.style_weight, c.init) == (
        ("relu2_1",), (), 1.0, 0.0, "noise")
    s = style_options(FAST.replace(style_layer_weights=(1, 2, 3, 4, 5)), ("relu1_1", "relu2_1"))
    assert (s.content_layers, s.style_layers, s.content_weight, s.style_weight, s.init) == (
        (), ("relu1_1", "relu2_1"), 0.0, 1.0, "noise")
    assert s.style_layer_weights is None and (s.size, s.iterations) == (FAST.size, FAST.iterations)
    r = ratio_options(FAST, 1e-3, ("relu1_1",))
    assert r.content_weight == 1.0 and r.style_weight == pytest.approx(1e3) and r.style_layers == ("relu1_1",)
    with pytest.raises(ValueError, match="> 0"):
        ratio_options(FAST, 0.0, ("relu1_1",))


def test_content_reconstructions_lower_their_own_loss(random_vgg: VGG) -> None:
    target, rec = smooth_image(), Recorder()
    panels = reconstruct_content(random_vgg, target, ["relu1_1", "relu3_1"], FAST, on_step=rec)
    assert [p.label for p in panels] == ["relu1_1", "relu3_1"]
    for k, panel in enumerate(panels):
        totals = rec.totals(k)
        assert totals[-1] < 0.5 * totals[0], f"panel {k} loss fell only from {totals[0]:.3g} to {totals[-1]:.3g}"
        assert set(panel.result.losses) == {"content", "total"}  # no style term at all
        assert panel.image.shape == target.shape
        assert panel.result.options.content_layers == panel.layers
    assert {e.stages for e in rec.events} == {2}


def test_low_layer_reconstruction_approaches_the_image(real_vgg: VGG) -> None:
    """relu1_1 keeps nearly all pixel information: from noise, the pixels move most of the way to the photo."""
    target = smooth_image(3)
    start = torch.rand(target.shape, generator=torch.Generator().manual_seed(FAST.seed))
    (panel,) = reconstruct_content(real_vgg, target, ["relu1_1"], FAST.replace(iterations=30))
    before = (start - target).abs().mean()
    after = (panel.image - target).abs().mean()
    assert after < 0.4 * before, f"mean pixel error {before:.3f} -> {after:.3f}"


def test_style_subset_panels_lower_their_loss_and_differ(real_vgg: VGG) -> None:
    """Real weights: in a random VGG the deeper layers' Gram terms are too weak to change the texture."""
    texture, rec = smooth_image(1), Recorder()
    subsets = style_subsets((1, 2, 3))
    panels = reconstruct_style(real_vgg, texture, subsets, FAST, on_step=rec)
    assert [p.layers for p in panels] == subsets
    for k, panel in enumerate(panels):
        assert rec.totals(k)[-1] < rec.totals(k)[0]
        assert set(panel.result.losses) == {"style", "total"}
    for a in range(3):
        for b in range(a + 1, 3):
            diff = (panels[a].image - panels[b].image).abs().mean()
            assert diff > 0.03, f"panels {a} and {b} are nearly the same ({diff:.4f})"


def test_stopping_returns_the_panels_made_so_far(random_vgg: VGG) -> None:
    def stop_in_second_panel(event: StepEvent) -> bool:
        return event.stage == 1 and event.iteration == 2

    panels = reconstruct_content(random_vgg, smooth_image(), ["relu1_1", "relu2_1", "relu3_1"], FAST,
                                 on_step=stop_in_second_panel)
    assert len(panels) == 2 and panels[1].result.stopped and not panels[0].result.stopped


def test_unknown_layers_and_empty_requests_fail_before_work(random_vgg: VGG) -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="no layer 'relu9_9'"):
        reconstruct_content(random_vgg, smooth_image(), ["relu1_1", "relu9_9"], FAST, on_step=rec)
    with pytest.raises(ValueError, match="no layer"):
        reconstruct_style(random_vgg, smooth_image(), [("relu1_1", "fc9")], FAST, on_step=rec)
    assert rec.events == []
    with pytest.raises(ValueError, match="at least one"):
        reconstruct_content(random_vgg, smooth_image(), [], FAST)
    with pytest.raises(ValueError, match="non-empty"):
        reconstruct_style(random_vgg, smooth_image(), [()], FAST)


def test_tradeoff_grid_cells_and_weights(random_vgg: VGG) -> None:
    content, style = smooth_image(0), smooth_image(5)
    rows = [(style, ("relu1_1",)), (style, ("relu1_1", "relu2_1"))]
    cells = tradeoff_grid(random_vgg, content, rows, [1e-3, 1e-1], FAST.replace(iterations=4))
    assert [(c.row, c.column) for c in cells] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [c.result.options.style_weight for c in cells] == pytest.approx([1e3, 10, 1e3, 10])
    assert cells[3].style_layers == ("relu1_1", "relu2_1")
    assert all(c.result.options.content_weight == 1.0 for c in cells)
    # More style weight, more of the total is style.
    share = [c.result.losses["style"] / c.result.losses["total"] for c in cells[:2]]
    assert share[0] > share[1]


# ------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    images.to_pil(smooth_image(2, (40, 48))).save(path)
    return path


TINY = ["--size", "24", "--iterations", "2", "--quiet"]


def test_cli_reconstruct_content_writes_panels_and_figure(real_vgg: VGG, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    assert main(["reconstruct", "content", str(photo), "--layers", "relu1_1,conv2_1", "-o", str(out), *TINY]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["content_conv2_1.png", "content_figure.png",
                                                     "content_relu1_1.png"]
    meta = images.read_metadata(out / "content_conv2_1.png")
    assert meta is not None and meta["method"] == "reconstruct-content" and meta["layers"] == ["conv2_1"]
    assert meta["options"]["size"] == 24 and meta["weights"]["id"] == "vgg16-caffe"
    panel = Image.open(out / "content_relu1_1.png")
    assert max(panel.size) == 24
    figure = Image.open(out / "content_figure.png")
    assert figure.width > 3 * panel.width and figure.height > panel.height  # input + 2 panels, labels under


def test_cli_reconstruct_style_depths(real_vgg: VGG, photo: Path, tmp_path: Path) -> None:
    out, fig = tmp_path / "tex", tmp_path / "figs" / "style.png"
    assert main(["reconstruct", "style", str(photo), "--depths", "1,3", "-o", str(out), "--figure", str(fig),
                 *TINY]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["style_relu1_1-relu3_1.png", "style_relu1_1.png"]
    meta = images.read_metadata(fig)
    assert meta is not None and meta["panels"] == ["relu1_1", "relu1_1…relu3_1"]


def test_cli_grid_writes_a_labelled_figure(real_vgg: VGG, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    args = ["grid", str(photo), str(photo), "-o", str(out), "--ratios", "1e-3,1e-1", "--style-depths", "1,2"]
    assert main([*args, *TINY]) == 0
    meta = images.read_metadata(out)
    assert meta is not None and meta["ratios"] == [1e-3, 1e-1] and meta["rows"] == ["relu1_1", "relu1_1…relu2_1"]
    assert len(meta["cells"]) == 4
    assert Image.open(out).width > 2 * 20


def test_cli_grid_of_styles_has_one_row_per_style(real_vgg: VGG, photo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.png"
    images.to_pil(smooth_image(9, (30, 30))).save(other)
    out = tmp_path / "styles.png"
    args = ["grid", str(photo), "--styles", f"{photo},{other}", "--style-depths", "2", "--ratios", "1e-2"]
    assert main([*args, "-o", str(out), *TINY]) == 0
    meta = images.read_metadata(out)
    assert meta is not None and meta["rows"] == ["photo", "other"] and len(meta["cells"]) == 2
    assert meta["style_layers"] == [["relu1_1", "relu2_1"]] * 2 and meta["options"]["init"] == "noise"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reconstruct", "content", "{photo}", "--layers", "relu9_1", "-o", "{tmp}/o"], "no layer 'relu9_1'"),
        (["reconstruct", "style", "{photo}", "--depths", "0,2", "-o", "{tmp}/o"], "between 1 and 5"),
        (["reconstruct", "content", "{tmp}/missing.png", "-o", "{tmp}/o"], "missing.png"),
        (["reconstruct", "content", "{photo}", "-o", "{photo}"], "must be a folder"),
        (["grid", "{photo}", "-o", "{tmp}/g.png"], "give a STYLE image"),
        (["grid", "{photo}", "{photo}", "--styles", "{photo}", "-o", "{tmp}/g.png"], "not both"),
        (["grid", "{photo}", "{photo}", "--ratios", "0,1e-3", "-o", "{tmp}/g.png"], "> 0"),
        (["grid", "{photo}", "{photo}", "-o", "{photo}"], "never overwritten"),
        (["grid", "{photo}", "{photo}", "--size", "4", "-o", "{tmp}/g.png"], "size must be"),
        (["grid", "{photo}", "--styles", "{photo}", "--style-depths", "1,2", "-o", "{tmp}/g"], "one --style-depths"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    real_vgg: VGG, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [a.format(photo=photo, tmp=tmp_path) for a in args]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylegram: error:") and message in err and len(err.splitlines()) == 1
