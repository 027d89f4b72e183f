"""Small frozen records that long-running library calls hand to an ``on_step`` callback.

The library never prints: the command line turns these into a progress bar, the web app into messages.
A callback returns ``True`` to ask the run to stop after this step (Ctrl-C in the CLI does exactly that).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class StepEvent:
    """One loss evaluation of an optimisation (one forward and one backward pass).

    ``losses`` holds the weighted terms by name (``content``, ``style``, ``tv``) and ``total``.
    ``image()`` renders the current image as an RGB (1, 3, H, W) tensor in [0, 1]; it costs a copy, so call it
    only when the image is wanted (e.g. to save every N steps).
    """

    iteration: int
    total: int
    losses: dict[str, float]
    elapsed: float
    stage: int = 0
    stages: int = 1
    render: Callable[[], Tensor] = field(repr=False, compare=False, default=lambda: _no_image())

    def image(self) -> Tensor:
        return self.render()


def _no_image() -> Tensor:
    raise RuntimeError("this event carries no image")


OnStep = Callable[[StepEvent], "bool | None"]


def tagged(on_step: OnStep | None, stage: int, stages: int) -> OnStep | None:
    """``on_step`` told which stage (or panel) of ``stages`` each event belongs to (``stage`` counts from 0)."""
    if on_step is None:
        return None
    callback = on_step

    def forward(event: StepEvent) -> bool | None:
        return callback(dataclasses.replace(event, stage=stage, stages=stages))

    return forward
