"""Checkpoints never change a Gatys run's pixels: straight, with checkpoints, and stopped then resumed (with or
without checkpoints after the resume), single-scale and coarse-to-fine, L-BFGS and Adam.

The stop falls between checkpoints, so checkpoint boundaries lie ahead of the resume point too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.gatys import GatysOptions, multiscale
from stylegram.nets.vgg import VGG
from stylegram.optim import checkpoint

LAYERS = {"content_layers": ("relu2_2",), "style_layers": ("relu1_1", "relu2_1")}


def _pictures() -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(5)
    return (Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("stages", [1, 2])
def test_checkpoints_and_resumes_keep_the_pixels(random_vgg: VGG, tmp_path: Path, optimizer: str, stages: int,
                                                 one_thread: None) -> None:
    content, style = _pictures()
    size = 64 if stages == 2 else 32
    o = GatysOptions(size=size, coarse_size=32, iterations=16, optimizer=optimizer,  # type: ignore[arg-type]
                     precision="float32", **LAYERS)
    assert len(multiscale.plan(o)) == stages

    def go(**kw: object) -> multiscale.GatysResult:
        return multiscale.run(random_vgg, content, [style], o, **kw)  # type: ignore[arg-type]

    straight = go()
    with_checkpoints = go(checkpoint_to=(tmp_path / "a.ckpt", 5))
    assert torch.equal(straight.image, with_checkpoints.image)
    total = sum(st.iterations for st in multiscale.plan(o))
    stop_at = 12 if stages == 1 else 7  # in the last stage (16 + 8 evaluations): after its checkpoint at 5
    last = stages - 1
    stopped = go(checkpoint_to=(tmp_path / "b.ckpt", 5),
                 on_step=lambda e: e.stage == last and e.iteration >= stop_at)
    assert stopped.stopped
    state = checkpoint.load(tmp_path / "b.ckpt")
    assert int(state["stage"]) == last and 5 <= int(state["count"]) < stop_at
    for again in (None, (tmp_path / "c.ckpt", 5)):
        resumed = go(resume=state, checkpoint_to=again)
        assert torch.equal(resumed.image, straight.image), f"resumed with checkpoint_to={again}"
    assert straight.iterations == total
