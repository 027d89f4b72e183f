"""Coarse-to-fine: the stage plan, the stages run through gatys.run, events, sizes and resolution consistency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.cli.main import main
from stylegram.core.events import StepEvent
from stylegram.gatys import GatysOptions, Objective, compute_targets, multiscale, prepare
from stylegram.gatys.multiscale import Stage, plan
from stylegram.nets.vgg import VGG

# Tiny stages: 64 px output from a 32 px coarse stage; shallow layers keep it fast.
TINY = {"size": 64, "coarse_size": 32, "iterations": 6, "precision": "float32", "init": "content",
        "content_layers": ("relu2_1",), "style_layers": ("relu1_1", "relu2_1")}


def _pictures() -> tuple[Image.Image, Image.Image]:
    """A smooth content picture (pixel noise would not survive any upsampling) and a striped style."""
    rng = np.random.default_rng(0)
    content = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((60, 45), Image.BICUBIC)
    yy, xx = np.mgrid[0:50, 0:50]
    stripes = (127 + 120 * np.sin((xx + 2 * yy) / 2.0))[..., None] * np.array([1.0, 0.6, 0.2])
    return content, Image.fromarray(stripes.astype(np.uint8))


def test_plan_halves_sizes_and_iterations() -> None:
    assert plan(GatysOptions(size=1024, iterations=500)) == [Stage(512, 500), Stage(1024, 250)]
    assert plan(GatysOptions(size=1500, iterations=400)) == [Stage(375, 400), Stage(750, 200), Stage(1500, 100)]
    assert plan(GatysOptions(size=512, iterations=500)) == [Stage(512, 500)]
    assert plan(GatysOptions(size=1024, iterations=500, multiscale=False)) == [Stage(1024, 500)]
    assert plan(GatysOptions(size=1024, iterations=3, coarse_size=256)) == [Stage(256, 3), Stage(512, 1),
                                                                             Stage(1024, 1)]
    assert plan(GatysOptions(size=1024, iterations=0)) == [Stage(512, 0), Stage(1024, 0)]


def test_plan_takes_explicit_stage_iterations_and_checks_their_count() -> None:
    assert plan(GatysOptions(size=1024, stage_iterations=(40, 7))) == [Stage(512, 40), Stage(1024, 7)]
    with pytest.raises(ValueError, match="3 stage iterations for 2 stages"):
        plan(GatysOptions(size=1024, stage_iterations=(1, 2, 3)))
    with pytest.raises(ValueError, match="stage-iterations"):
        GatysOptions(stage_iterations=(-1,))
    with pytest.raises(ValueError, match="coarse-size"):
        GatysOptions(coarse_size=8)


def test_run_reports_stages_and_returns_the_target_size(random_vgg: VGG) -> None:
    content, style = _pictures()
    events: list[StepEvent] = []
    result = multiscale.run(random_vgg, content, [style], GatysOptions(**TINY), on_step=events.append)
    assert result.image.shape == (1, 3, 48, 64)
    assert [(e.stage, e.stages, e.total) for e in events] == [(0, 2, 6)] * 6 + [(1, 2, 3)] * 3
    assert [e.iteration for e in events] == [1, 2, 3, 4, 5, 6, 1, 2, 3]
    assert events[0].image().shape[-2:] == (24, 32) and events[-1].image().shape[-2:] == (48, 64)
    assert result.iterations == 9 and result.options.size == 64 and not result.stopped


def test_coarse_to_fine_lowers_the_loss_at_the_target_size(random_vgg: VGG) -> None:
    content, style = _pictures()
    options = GatysOptions(**{**TINY, "iterations": 12})
    c, s = prepare(content, [style], options)
    objective = Objective(random_vgg, compute_targets(random_vgg, c, s, options), options)
    result = multiscale.run(random_vgg, content, [style], options)
    with torch.no_grad():
        start, end = float(objective(c)["total"]), float(objective(result.image)["total"])
    assert end < 0.9 * start


def test_style_is_prepared_at_style_scale_times_each_stage(random_vgg: VGG, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[tuple[int, ...], tuple[int, ...], bool]] = []
    real = multiscale.run_single

    def spy(vgg: VGG, c: torch.Tensor, s: list[torch.Tensor], o: GatysOptions, **kw: Any) -> Any:
        seen.append((tuple(c.shape[-2:]), tuple(s[0].shape[-2:]), kw["init"] is not None))
        if kw["init"] is not None:
            assert kw["init"].shape == c.shape  # the previous stage's result, upsampled to this stage
        return real(vgg, c, s, o, **kw)

    monkeypatch.setattr(multiscale, "run_single", spy)
    content, style = _pictures()
    multiscale.run(random_vgg, content, [style], GatysOptions(**{**TINY, "iterations": 2, "style_scale": 0.5}))
    # The square style's side is half the stage's longest side at every stage: strokes scale with the output.
    assert seen == [((24, 32), (16, 16), False), ((48, 64), (32, 32), True)]


def test_stopping_in_a_coarse_stage_still_returns_the_target_size(random_vgg: VGG) -> None:
    content, style = _pictures()
    result = multiscale.run(random_vgg, content, [style], GatysOptions(**TINY, original_colors=True),
                            on_step=lambda e: e.iteration == 2)
    assert result.stopped and result.iterations == 2 and result.image.shape == (1, 3, 48, 64)


def test_cli_rejects_a_stage_iterations_count_that_does_not_match(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    content, style = _pictures()
    content.save(tmp_path / "c.png")
    style.save(tmp_path / "s.png")
    code = main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(tmp_path / "o.png"),
                 "--size", "64", "--coarse-size", "32", "--stage-iterations", "5", "--quiet"])
    assert code == 2
    assert "1 stage iterations for 2 stages (32 → 64 px)" in capsys.readouterr().err
