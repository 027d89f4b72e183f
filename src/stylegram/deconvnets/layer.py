"""One deconvolutional layer as data: its spec, its filters and its connectivity table."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from stylegram.deconvnets import ops
from stylegram.deconvnets.options import LayerSpec


@dataclass(frozen=True)
class Layer:
    """``filters`` (K, C, s, s) convolution kernels; ``connectivity`` (K, C) bool: which input channels map k
    sees (the paper's binary g). Unconnected kernels are kept at zero."""

    spec: LayerSpec
    filters: Tensor
    connectivity: Tensor

    @property
    def maps(self) -> int:
        return int(self.filters.shape[0])

    @property
    def channels(self) -> int:
        return int(self.filters.shape[1])

    @property
    def size(self) -> int:
        return int(self.filters.shape[-1])

    def weight(self) -> Tensor:
        """The ``conv2d`` weight of :func:`stylegram.deconvnets.ops.weight`."""
        return ops.weight(self.filters, self.connectivity)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Layer:
        return Layer(self.spec, self.filters.to(device=device, dtype=dtype), self.connectivity.to(device))

    def with_filters(self, filters: Tensor) -> Layer:
        return Layer(self.spec, filters, self.connectivity)


def connectivity_table(maps: int, channels: int, rule: str) -> Tensor:
    """The (maps, channels) table g: ``full`` joins every map to every channel; ``paper`` gives each map one
    channel, then each pair of channels, in order (the paper's 45 layer-2 maps on 9 layer-1 maps are the 9
    singles and the 36 pairs), starting over when there are more maps than singles and pairs."""
    if rule == "full" or channels == 1:
        return torch.ones(maps, channels, dtype=torch.bool)
    groups = [(c,) for c in range(channels)] + list(itertools.combinations(range(channels), 2))
    table = torch.zeros(maps, channels, dtype=torch.bool)
    for k in range(maps):
        table[k, list(groups[k % len(groups)])] = True
    return table


def initial_layer(spec: LayerSpec, channels: int, generator: torch.Generator) -> Layer:
    """Random unit-norm kernels (Gaussian, as the paper initialises) on the spec's connectivity."""
    g = connectivity_table(spec.maps, channels, spec.connectivity)
    f = torch.randn(spec.maps, channels, spec.filter, spec.filter, generator=generator)
    return Layer(spec, ops.project_filters(f, g), g)
