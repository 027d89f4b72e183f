"""Feature evolution during training (Zeiler & Fergus 2014, Fig. 4): for a few maps, the strongest
activation over a set of images, projected to pixel space, at each saved epoch of a ZFNet training run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, tagged
from stylegram.visualize.top import Hit, ImageSource, top_activations
from stylegram.visualize.zfnet_files import load_zfnet


@dataclass(frozen=True)
class Evolution:
    """``hits[i][j]``: map ``channels[i]``'s strongest hit (with its projection) at checkpoint ``epochs[j]``."""

    layer: str
    channels: tuple[int, ...]
    epochs: tuple[int, ...]
    hits: tuple[tuple[Hit | None, ...], ...]


def evolution(checkpoints: Sequence[str | os.PathLike[str]], images: ImageSource, layer: str,
              channels: Sequence[int], *, rule: str = "deconvnet", device: str | None = None,
              on_step: OnStep | None = None) -> Evolution:
    """The strongest activation of each of ``channels`` of ``layer`` over ``images``, projected, per checkpoint
    (sorted by epoch)."""
    if not checkpoints:
        raise UsageError("give at least one checkpoint")
    columns: list[tuple[int, list[Hit | None]]] = []
    for j, path in enumerate(checkpoints):  # one network in memory at a time
        net, info = load_zfnet(path, device)
        top = top_activations(net, images, [layer], 1, list(channels), rule=rule,
                              on_step=tagged(on_step, j, len(checkpoints)))
        columns.append((info.epoch, [hits[0] if hits else None for hits in top.layers[layer].hits]))
        del net
    columns.sort(key=lambda col: col[0])
    rows = tuple(tuple(col[i] for _, col in columns) for i in range(len(channels)))
    return Evolution(layer, tuple(channels), tuple(epoch for epoch, _ in columns), rows)
