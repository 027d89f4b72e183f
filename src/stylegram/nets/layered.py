"""What VGG and ZFNet share: a list of named layers run in order, features returned by name.

A network built from a configuration list keeps ``specs`` (one per layer, each with a ``name`` and a ``kind``),
``normalize`` (the input transform) and :meth:`run_layer` (one layer on its input). This base gives them both
the same forward pass (up to the deepest layer asked for, never further), the same look-up of layers by name
with one message for an unknown name, and the same freezing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Self

from torch import Tensor, nn

from stylegram.core.errors import UsageError


class NamedLayerNet(nn.Module):
    """A network of named layers; subclasses set ``specs`` and ``normalize``, call :meth:`index_layers`, and
    implement :meth:`run_layer`."""

    title = "the network"
    specs: Sequence[Any]
    normalize: nn.Module

    def index_layers(self) -> None:
        self._order = {s.name: i for i, s in enumerate(self.specs)}

    @property
    def layer_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def layer_index(self, name: str) -> int:
        """The position of layer ``name``; UsageError naming the layers there are for an unknown one."""
        try:
            return self._order[name]
        except KeyError:
            raise UsageError(f"{self.title} has no layer {name!r}; layers are {', '.join(self.layer_names)}") from None

    def freeze(self) -> Self:
        """Switch to eval mode and stop weight gradients: a backward pass then computes input gradients only."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def run_layer(self, spec: Any, h: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """Named features of ``x`` (RGB in [0, 1], (B, 3, H, W)); runs only up to the deepest one asked for."""
        wanted = set(layers)
        if not wanted:
            return {}
        last = max(self.layer_index(n) for n in wanted)
        out: dict[str, Tensor] = {}
        h = self.normalize(x)
        for spec in self.specs[: last + 1]:
            h = self.run_layer(spec, h)
            if spec.name in wanted:
                out[spec.name] = h
        return out
