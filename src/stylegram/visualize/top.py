"""The k strongest activations of chosen feature maps over a whole folder of images (Zeiler & Fergus, Fig. 2).

Images stream through the network in batches; for every map only its k best images are kept, as one small
tensor "heap" per layer: values, image numbers and positions of shape (maps, k), merged with each batch's
per-image maxima by one ``topk``. Memory is independent of the folder's size (only the list of file names
grows with it). Each image counts once per map, at its strongest position, so the k hits are k different
images. Afterwards each hit is projected to pixel space (one batched walk per image and layer, see
:mod:`stylegram.visualize.project`) and both the projection and the image patch are cropped to the unit's
receptive field.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from stylegram.core import images
from stylegram.core.errors import StylegramError, UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.visualize.layers import Network, channels_of, check_fits, deepest, device_of, map_shape, upto
from stylegram.visualize.project import Rule, check_rule, forward_record, project_units
from stylegram.visualize.receptive import Box, receptive_field

EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


class ImageFolder:
    """The images under a folder (recursively, in sorted order), loaded one at a time when asked for.

    ``size`` scales each so its longest side is that many pixels (None: as they are). Unreadable files are
    skipped when met, and counted in :attr:`skipped`.
    """

    def __init__(self, folder: str | os.PathLike[str], size: int | None = None) -> None:
        root = Path(folder)
        if not root.is_dir():
            what = "not found" if not root.exists() else "not a folder"
            raise UsageError(f"image folder '{os.fspath(folder)}': {what}")
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not self.files:
            raise UsageError(f"image folder '{os.fspath(folder)}' holds no images ({', '.join(sorted(EXTENSIONS))})")
        self.root, self.size, self.skipped = root, size, 0

    def __len__(self) -> int:
        return len(self.files)

    def name(self, i: int) -> str:
        return self.files[i].relative_to(self.root).as_posix()

    def __getitem__(self, i: int) -> Tensor:
        img = images.load_image(self.files[i])
        if self.size is not None:
            img = images.resize_longest(img, self.size)
        return images.to_tensor(img)


ImageSource = ImageFolder | Sequence[Tensor]


@dataclass(frozen=True)
class Hit:
    """One of a map's strongest activations: its ``value``, which image (``source``, ``name``), where in the
    map (``position``), its receptive-field ``box`` in that image, and when projected, the projection and the
    image patch, both (3, h, w) crops of the box."""

    value: float
    source: int
    name: str
    position: tuple[int, int]
    box: Box
    projection: Tensor | None = None
    patch: Tensor | None = None


@dataclass(frozen=True)
class TopMaps:
    """The hits of each of a layer's chosen ``channels``, strongest first (fewer than k if fewer images)."""

    layer: str
    channels: tuple[int, ...]
    hits: tuple[tuple[Hit, ...], ...]


@dataclass(frozen=True)
class TopResult:
    layers: dict[str, TopMaps]
    images: int  # images seen
    skipped: int  # unreadable images skipped
    stopped: bool  # on_step asked to stop before the end
    seconds: float


class _Heap:
    """The k best (value, image, position, image height, image width) of M maps, as (M, k) tensors."""

    def __init__(self, maps: int, k: int) -> None:
        self.values = torch.full((maps, k), float("-inf"))
        self.meta = torch.full((maps, k, 4), -1, dtype=torch.long)  # source, flat position, H, W

    def merge(self, values: Tensor, meta: Tensor) -> None:
        """``values`` (M, B) and ``meta`` (M, B, 4) of a batch join the heap; the best k stay."""
        all_values = torch.cat([self.values, values], dim=1)
        all_meta = torch.cat([self.meta, meta], dim=1)
        self.values, order = all_values.topk(self.values.shape[1], dim=1)
        self.meta = all_meta.gather(1, order[..., None].expand(-1, -1, 4))


def top_activations(net: Network, images: ImageSource, layers: Sequence[str], k: int = 9,
                    channels: Mapping[str, Sequence[int]] | Sequence[int] | None = None, *,
                    rule: str | None = "deconvnet", batch_size: int = 16,
                    on_step: OnStep | None = None) -> TopResult:
    """The ``k`` images with the strongest activation of each chosen map of each of ``layers``.

    ``images``: an :class:`ImageFolder` or a sequence of (1, 3, H, W) tensors. ``channels``: per layer (a
    mapping) or for every layer (a sequence); None takes every map. ``rule`` projects each hit (None: no
    projections). ``on_step`` hears of every image; returning True stops early with the hits so far.
    """
    start = time.perf_counter()
    if not layers:
        raise UsageError("give at least one layer")
    if k < 1:
        raise UsageError(f"k must be at least 1, got {k}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if len(images) == 0:
        raise UsageError("no images to look through")
    checked_rule = None if rule is None else check_rule(rule)
    chosen = _channels(net, layers, channels)
    heaps = {layer: _Heap(len(chosen[layer]), k) for layer in layers}
    seen, stopped = 0, False
    last_path = upto(net, deepest(net, tuple(layers)))
    for first, batch in _batches(images, batch_size):
        check_fits(last_path, batch.shape[-2], batch.shape[-1])
        with torch.no_grad():
            feats = net(batch.to(device_of(net)), list(layers))
        for layer in layers:
            _merge(heaps[layer], feats[layer][:, list(chosen[layer])], first, batch.shape[-2:])
        seen = first + batch.shape[0]
        if on_step is not None and on_step(StepEvent(seen, len(images), {}, time.perf_counter() - start)):
            stopped = True
            break
    result = {layer: _hits(net, layer, chosen[layer], heaps[layer], images) for layer in layers}
    if checked_rule is not None:
        result = _project_hits(net, result, images, checked_rule)
    skipped = images.skipped if isinstance(images, ImageFolder) else 0
    return TopResult(result, seen - skipped, skipped, stopped, time.perf_counter() - start)


def _channels(net: Network, layers: Sequence[str],
              channels: Mapping[str, Sequence[int]] | Sequence[int] | None) -> dict[str, tuple[int, ...]]:
    out = {}
    for layer in layers:
        count = channels_of(net, layer)
        wanted = (channels.get(layer) if isinstance(channels, Mapping) else channels)
        picked = tuple(range(count)) if wanted is None else tuple(int(c) for c in wanted)
        bad = [c for c in picked if not 0 <= c < count]
        if bad:
            raise UsageError(f"channel {bad[0]} is out of range: {layer} has {count} maps (0 to {count - 1})")
        if not picked:
            raise UsageError(f"no channels chosen for {layer}")
        out[layer] = picked
    return out


def _batches(source: ImageSource, batch_size: int) -> Iterator[tuple[int, Tensor]]:
    """(number of the first image, batch) of consecutive images of one size; unreadable files are skipped
    (their number is left out, so hits keep pointing at the right file)."""
    pending: list[Tensor] = []
    first = 0
    for i in range(len(source)):
        try:
            image = source[i]
        except StylegramError:
            if not isinstance(source, ImageFolder):
                raise
            source.skipped += 1
            image = None
        if pending and (image is None or image.shape != pending[0].shape or len(pending) == batch_size):
            yield first, torch.cat(pending)
            pending = []
        if image is None:
            continue
        if not pending:
            first = i
        pending.append(image)
    if pending:
        yield first, torch.cat(pending)


def _merge(heap: _Heap, feats: Tensor, first: int, hw: Sequence[int]) -> None:
    """Each image's strongest position per map (feats: (B, M, h, w)) into the heap."""
    b, m = feats.shape[:2]
    values, where = feats.flatten(2).max(dim=2)  # (B, M)
    meta = torch.empty((m, b, 4), dtype=torch.long)
    meta[..., 0] = torch.arange(first, first + b)[None, :]
    meta[..., 1] = where.t().cpu()
    meta[..., 2], meta[..., 3] = int(hw[0]), int(hw[1])
    heap.merge(values.t().float().cpu(), meta)


def _hits(net: Network, layer: str, channels: tuple[int, ...], heap: _Heap, source: ImageSource) -> TopMaps:
    field = receptive_field(net, layer)
    path = upto(net, layer)
    per_map = []
    for m in range(len(channels)):
        hits = []
        for j in range(heap.values.shape[1]):
            src, flat, height, width = (int(v) for v in heap.meta[m, j])
            if src < 0:
                continue
            map_w = map_shape(path, height, width)[1]
            y, x = flat // map_w, flat % map_w
            name = source.name(src) if isinstance(source, ImageFolder) else f"image {src}"
            hits.append(Hit(float(heap.values[m, j]), src, name, (y, x), field.box(y, x, height, width)))
        per_map.append(tuple(hits))
    return TopMaps(layer, channels, tuple(per_map))


def _project_hits(net: Network, result: dict[str, TopMaps], source: ImageSource, rule: Rule) -> dict[str, TopMaps]:
    """Every hit with its projection and patch: one forward per image and layer, its hits projected together."""
    wanted: dict[tuple[int, str], list[tuple[int, int]]] = {}  # (image, layer) -> [(map index, hit index)]
    for layer, top in result.items():
        for m, hits in enumerate(top.hits):
            for j, hit in enumerate(hits):
                wanted.setdefault((hit.source, layer), []).append((m, j))
    done: dict[tuple[str, int, int], Hit] = {}
    for (src, layer), where in sorted(wanted.items()):
        image = source[src]
        top = result[layer]
        units = [(top.channels[m], *top.hits[m][j].position) for m, j in where]
        path, rec = forward_record(net, image, layer)
        for (m, j), proj in zip(where, project_units(net, path, rec, units, rule, image.shape[-2:]), strict=True):
            hit = top.hits[m][j]
            done[(layer, m, j)] = Hit(hit.value, hit.source, hit.name, hit.position, hit.box,
                                      _crop(proj.image[0], hit.box), _crop(image[0], hit.box))
    return {layer: TopMaps(layer, top.channels, tuple(tuple(done[(layer, m, j)] for j in range(len(hits)))
                                                      for m, hits in enumerate(top.hits)))
            for layer, top in result.items()}


def _crop(t: Tensor, box: Box) -> Tensor:
    top, left, bottom, right = box
    return t[:, top:bottom, left:right].clone()
