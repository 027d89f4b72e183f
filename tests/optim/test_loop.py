"""The evaluation loop: exact budget, best-so-far, divergence, and checkpoints that do not change the path.

A run without checkpoints, one with them, and one stopped and resumed from a checkpoint (with or without
checkpoints after the resume) must make the same evaluations in the same order and end with the same pixels,
for L-BFGS and Adam. Checkpoint boundaries still lie ahead of the resume point in every case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from stylegram.core.events import StepEvent
from stylegram.optim import checkpoint
from stylegram.optim.loop import EvaluationLoop, LoopSettings

N = 40  # evaluations per run


class Rosenbrockish:
    """A non-convex objective of many variables on which L-BFGS's line search often evaluates twice."""

    def __init__(self) -> None:
        self.calls = 0

    def value_and_grad(self, x: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        with torch.enable_grad():
            a, b = x[..., :-1], x[..., 1:]
            total = ((1 - a) ** 2).sum() + 10 * ((b - a**2) ** 2).sum()
            x.grad = None
            total.backward()  # type: ignore[no-untyped-call]
        return {"total": total.detach(), "rosen": total.detach()}


def _start() -> Tensor:
    return torch.rand(1, 3, 4, 6, generator=torch.Generator().manual_seed(3)).requires_grad_(True)


def _run(optimizer: str, *, every: int = 0, path: Path | None = None, stop_at: int | None = None,
         resume: dict[str, Any] | None = None) -> EvaluationLoop:
    x = _start()
    settings = LoopSettings(N, optimizer, 0.05 if optimizer == "adam" else None, history=10)  # type: ignore[arg-type]
    saving = checkpoint.Checkpointing(path, every) if every and path is not None else None

    def on_step(event: StepEvent) -> bool:
        return stop_at is not None and event.iteration >= stop_at

    loop = EvaluationLoop(Rosenbrockish(), x, settings, on_step=on_step, checkpointing=saving, resume=resume,
                          identity="test")
    loop.optimise()
    return loop


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_checkpoints_do_not_change_the_path(optimizer: str, tmp_path: Path) -> None:
    plain = _run(optimizer)
    with_checkpoints = _run(optimizer, every=7, path=tmp_path / "a.ckpt")
    assert plain.count == with_checkpoints.count == N
    assert torch.equal(plain.x, with_checkpoints.x)
    assert plain.best_terms == with_checkpoints.best_terms


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("checkpoints_after_resume", [True, False])
def test_a_resumed_run_ends_where_a_straight_one_does(optimizer: str, checkpoints_after_resume: bool,
                                                       tmp_path: Path) -> None:
    straight = _run(optimizer)
    ckpt = tmp_path / "b.ckpt"
    stopped = _run(optimizer, every=7, path=ckpt, stop_at=17)  # checkpoints near 7 and 14; 21, 28 … still ahead
    assert stopped.stopped and stopped.count == 17
    state = checkpoint.load(ckpt)
    assert 14 <= int(state["count"]) < 17
    resumed = _run(optimizer, every=7 if checkpoints_after_resume else 0, path=tmp_path / "c.ckpt", resume=state)
    assert resumed.count == N
    assert torch.equal(resumed.x, straight.x)
    assert resumed.best_terms == straight.best_terms


def test_the_re_evaluation_at_each_step_start_is_not_counted() -> None:
    loop = _run("lbfgs")
    # Every step() starts with an evaluation at the accepted point; those are answered from the cache.
    assert isinstance(loop.objective, Rosenbrockish) and loop.objective.calls == loop.count == N


def test_the_best_point_is_kept_and_a_nan_stops_the_run() -> None:
    class Diverging(Rosenbrockish):
        def value_and_grad(self, x: Tensor) -> dict[str, Tensor]:
            terms = super().value_and_grad(x)
            if self.calls >= 6:
                terms["total"] = torch.tensor(float("nan"))
            return terms

    x = _start()
    loop = EvaluationLoop(Diverging(), x, LoopSettings(N, "adam", 0.01), identity="t")
    loop.optimise()
    assert loop.diverged and loop.count == 6
    assert loop.best is not None and loop.best_terms["total"] == min(loop.best_terms["total"], loop.best_terms["rosen"])
