"""The evaluation-counting loop: one image (or any tensor) optimised for exactly N loss evaluations.

Every optimisation method of stylegram runs through :class:`EvaluationLoop`: it counts loss evaluations (one
forward and one backward pass each) against the budget, keeps the best point evaluated so far (L-BFGS's line
search evaluates trial points, and a run may be stopped inside one, so the last point evaluated is not always the
best), reports each evaluation to ``on_step`` (which may ask to stop), stops on a NaN or infinite loss
(``diverged``), and saves checkpoints between iterations.

**Checkpoints do not change the optimisation path.** torch's L-BFGS evaluates the objective at the start of
every ``step()``. The loop runs L-BFGS one iteration per ``step()``, so that a checkpoint can be taken after any
iteration; the evaluation at the start of each ``step()`` is at the point the previous iteration accepted, which
the line search has already evaluated, so it is answered from a small cache of that step's evaluations and not
counted. A run without checkpoints, one with them, and one resumed from a checkpoint (the cache entry is saved
with it) therefore make the same evaluations in the same order and end with the same pixels.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from stylegram.core.events import OnStep, StepEvent
from stylegram.optim import checkpoint


class Evaluator(Protocol):
    """An objective: the weighted loss terms at ``x`` (``"total"`` among them), with ``x.grad`` set."""

    def value_and_grad(self, x: Tensor) -> dict[str, Tensor]: ...


class _Stop(Exception):
    """Raised inside the optimiser's closure to end the run: asked to stop, budget spent, or diverged."""


@dataclass(frozen=True)
class LoopSettings:
    """How to optimise: the budget, the optimiser and its step size, and L-BFGS's history length."""

    iterations: int
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    learning_rate: float | None = None  # default: 1 for L-BFGS, 0.02 for Adam
    history: int = 100


@dataclass
class _Evaluation:
    x: Tensor
    terms: dict[str, Tensor]
    grad: Tensor


class EvaluationLoop:
    """Runs the optimiser for exactly ``settings.iterations`` loss evaluations, reporting each one.

    ``identity`` (JSON-ready) is saved with each checkpoint and compared on resume by the caller
    (:func:`stylegram.optim.checkpoint.check`); ``render`` turns the current point into the image an event shows.
    """

    # The first L-BFGS step moves the mean pixel by about this much (in [0, 1] units); see _lbfgs().
    FIRST_STEP = 0.01

    def __init__(
        self, objective: Evaluator, x: Tensor, settings: LoopSettings, *, on_step: OnStep | None = None,
        render: Callable[[], Tensor] | None = None, checkpointing: checkpoint.Checkpointing | None = None,
        resume: dict[str, Any] | None = None, identity: str = "",
    ) -> None:
        self.objective, self.x, self.settings = objective, x, settings
        self.on_step, self.render = on_step, render
        self.count, self.stopped, self.diverged = 0, False, False
        self.best: Tensor | None = None
        self.best_terms: dict[str, float] = {}
        self.checkpointing, self.resume, self.identity = checkpointing, resume, identity
        self._step_evals: list[_Evaluation] = []  # this L-BFGS step's evaluations, for the next step's first call
        self._saved_at = 0  # the count at the last checkpoint (or the resume)
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------------------------------ evaluating

    def evaluate(self) -> Tensor:
        """The closure: the total loss at ``x`` with ``x.grad`` set; counts, reports, keeps the best."""
        cached = self._cached()
        if cached is not None:
            self.x.grad = cached.grad.clone()
            return cached.terms["total"]
        if self.count >= self.settings.iterations:
            raise _Stop  # the line search wants more than the budget allows
        terms = self.objective.value_and_grad(self.x)
        self.count += 1
        last = {k: float(v) for k, v in terms.items()}
        if not math.isfinite(last["total"]):
            self.diverged = True
            raise _Stop
        if self.settings.optimizer == "lbfgs":
            assert self.x.grad is not None
            self._step_evals.append(_Evaluation(self.x.detach().clone(), terms, self.x.grad.detach().clone()))
        if self.best is None or last["total"] < self.best_terms["total"]:
            self.best, self.best_terms = self.x.detach().clone(), last
        if self.on_step is not None:
            render = self.render or (lambda: self.x.detach().clamp(0, 1))
            event = StepEvent(self.count, self.settings.iterations, last, time.perf_counter() - self.t0,
                              render=render)
            if self.on_step(event):
                self.stopped = True
                raise _Stop
        return terms["total"]

    def _cached(self) -> _Evaluation | None:
        for e in self._step_evals:
            if torch.equal(e.x, self.x.detach()):
                return e
        return None

    def _keep_accepted(self) -> None:
        """After a step: keep only the evaluation at the point L-BFGS accepted (the next step starts there)."""
        hit = self._cached()
        self._step_evals = [hit] if hit is not None else []

    # ------------------------------------------------------------------------------------------ optimisers

    def optimise(self) -> None:
        try:
            if self.settings.optimizer == "adam":
                self._adam()
            else:
                self._lbfgs()
        except _Stop:
            pass

    def _adam(self) -> None:
        opt = torch.optim.Adam([self.x], lr=self.settings.learning_rate or 0.02)
        self._restore(opt)
        while self.count < self.settings.iterations:
            self.evaluate()
            opt.step()
            self._save_if_due(opt)

    def _lbfgs(self) -> None:
        lr = self.settings.learning_rate or 1.0
        # Departure from neural-style, which runs L-BFGS without a line search: its first step is 1/|g|_1 along
        # -g, about 1e-6 per pixel for a megapixel image, and the curvature pair from such a step can scale the
        # second step into inf/NaN. Here the first iteration is a steepest-descent step sized to move the mean
        # pixel by FIRST_STEP, and every iteration uses a strong-Wolfe line search (~1.1 evaluations each).
        # max_eval is not a limit here: the budget is enforced by evaluate().
        lbfgs = torch.optim.LBFGS([self.x], lr=self.FIRST_STEP * self.x.numel(), max_iter=1, max_eval=2**62,
                                  history_size=self.settings.history, tolerance_grad=0.0, tolerance_change=0.0,
                                  line_search_fn="strong_wolfe")
        if not self._restore(lbfgs):
            lbfgs.step(self.evaluate)  # type: ignore[no-untyped-call]
            self._keep_accepted()
            for group in lbfgs.param_groups:
                group["lr"] = lr
            self._save_if_due(lbfgs)
        while self.count < self.settings.iterations:
            lbfgs.step(self.evaluate)  # type: ignore[no-untyped-call]
            self._keep_accepted()
            self._save_if_due(lbfgs)

    # ------------------------------------------------------------------------------------------ checkpoints

    def _save_if_due(self, opt: torch.optim.Optimizer) -> None:
        """Save after the iteration in which the count crossed a multiple of ``every`` (never at the end)."""
        c = self.checkpointing
        if c is None or c.every <= 0 or self.count >= self.settings.iterations:
            return
        if self.count // c.every == self._saved_at // c.every:
            return
        self._saved_at = self.count
        accepted = self._step_evals[0] if self._step_evals else None
        checkpoint.save(c.path, {
            "options": self.identity, "stage": c.stage,
            "x": self.x.detach().cpu(), "optimizer": opt.state_dict(), "count": self.count,
            "best": None if self.best is None else self.best.cpu(), "best_terms": self.best_terms,
            "accepted": None if accepted is None else {
                "terms": {k: v.detach().cpu() for k, v in accepted.terms.items()}, "grad": accepted.grad.cpu()},
        })

    def _restore(self, opt: torch.optim.Optimizer) -> bool:
        r = self.resume
        if r is None:
            return False
        with torch.no_grad():
            self.x.copy_(r["x"].to(self.x))
        opt.load_state_dict(copy.deepcopy(r["optimizer"]))  # the optimiser appends to its history in place
        self.count, self.best_terms = int(r["count"]), dict(r["best_terms"])
        self._saved_at = self.count
        self.best = None if r["best"] is None else r["best"].to(self.x)
        accepted = r.get("accepted")
        if accepted is not None:
            terms = {k: v.to(self.x.device) for k, v in accepted["terms"].items()}
            self._step_evals = [_Evaluation(self.x.detach().clone(), terms, accepted["grad"].to(self.x))]
        return True
