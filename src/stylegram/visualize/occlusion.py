"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2 and Fig. 7): slide a grey square over the image.

For each position of the square (top-left corners every ``stride`` pixels until it has covered the far edge,
the last one clipped there, as captum's ``Occlusion`` places them), the occluded image runs through the
network and we record

* (b) the total activation of one feature map: by default the map holding the strongest activation of the
  unoccluded image (the paper's "strongest feature map" of layer 5);
* (c) that map's strongest activation projected to pixel space, from the unoccluded image;
* (d) the probability of the target class (default: the unoccluded image's top class) and (e) the most
  probable class, where the network has a classifier (a torchvision VGG file or a trained ZFNet).

Occluded images go through in batches and only as far as needed: up to the layer when there is no
classifier, once through the whole network (features taken on the way) when there is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.visualize import incremental as inc
from stylegram.visualize.layers import Network, Step, check_fits, device_of, steps, upto
from stylegram.visualize.project import Projection, check_image, check_rule, project, project_recorded
from stylegram.visualize.switches import record


@dataclass(frozen=True)
class OcclusionResult:
    """Maps over the square's positions: row i, column j is the square at (``tops[i]``, ``lefts[j]``)."""

    layer: str
    channel: int
    window: int
    stride: int
    fill: float
    tops: tuple[int, ...]
    lefts: tuple[int, ...]
    activation: Tensor  # (rows, cols) float: total activation of the map, panel (b)
    unoccluded: float  # the same total without the square
    projection: Projection  # panel (c)
    target: int | None = None
    probability: Tensor | None = None  # (rows, cols): probability of ``target``, panel (d)
    predicted: Tensor | None = None  # (rows, cols) long: most probable class, panel (e)
    seconds: float = 0.0
    stopped: bool = False  # on_step asked to stop: the positions not reached are NaN (class -1)

    def to_pixels(self, grid: Tensor, height: int, width: int) -> Tensor:
        """A position map spread over the image: each pixel the mean over the squares covering it (NaN where
        none does), (height, width). This is how captum's Occlusion lays out its attributions."""
        total = torch.zeros(height, width, dtype=torch.float64)
        count = torch.zeros(height, width, dtype=torch.float64)
        for i, top in enumerate(self.tops):
            for j, left in enumerate(self.lefts):
                total[top : top + self.window, left : left + self.window] += float(grid[i, j])
                count[top : top + self.window, left : left + self.window] += 1
        return (total / count).float()


def positions(length: int, window: int, stride: int) -> tuple[int, ...]:
    """Top (or left) edges of the square along a side: every ``stride`` pixels until the square has reached the
    far edge, the last one clipped there if it overhangs (as captum's Occlusion places them)."""
    return tuple(range(0, max(length - window, 0) + stride, stride))


def occlusion(net: Network, image: Tensor, layer: str, window: int, stride: int, fill: float = 0.5, *,
              channel: int | None = None, target: int | None = None, batch_size: int = 32,
              rule: str = "deconvnet", incremental: bool = True, on_step: OnStep | None = None) -> OcclusionResult:
    """Occlusion maps of ``image`` ((1, 3, H, W) RGB in [0, 1]) for ``layer``: a ``window``-pixel square of
    grey level ``fill`` (0 black, 1 white) every ``stride`` pixels. See the module docstring for the panels.

    ``incremental`` recomputes only what each square changes (:mod:`.incremental`), where that is exact (max
    pools after ReLUs, as in VGG and ZFNet); otherwise, or when False, every occluded image runs in full."""
    start = time.perf_counter()
    check_image(image)
    height, width = image.shape[-2:]
    _check(window, stride, fill, batch_size, height, width)
    upto(net, layer)  # an unknown layer fails here, before any work
    classes = net.classifier is not None
    if target is not None and not classes:
        raise UsageError("a target class needs a network with a classifier")
    x = image.detach().to(device_of(net), torch.float32)
    path = steps(net) if classes else upto(net, layer)
    if incremental and inc.supported(path):
        # One recorded pass serves the projection (switches, masks), the unoccluded totals and the maps that
        # every occluded image is patched into.
        rule_ = check_rule(rule)
        projection_path = upto(net, layer)
        check_fits(path, height, width)
        with torch.no_grad():
            rec = record(path, net.normalize(x), keep=tuple(s.name for s in path))
        outputs = [rec.outputs[s.name] for s in path]
        at = [s.name for s in path].index(layer)
        projection = project_recorded(net, projection_path, replace(rec, features=outputs[at]), image.shape[-2:],
                                      channel, rule_)
        c = projection.channel
        base_total = outputs[at][:, c].sum(dim=(1, 2))
        base_logits = _head(net, outputs[-1]) if classes else torch.empty(0, 0)
        bases: list[Tensor] | None = outputs
    else:
        bases = None
        projection = project(net, image, layer, channel, rule)
        c = projection.channel
        base_total, base_logits = _evaluate(net, x, layer, c, classes)
    if classes and target is None:
        target = int(base_logits[0].argmax())
    if target is not None and not 0 <= target < base_logits.shape[1]:
        raise UsageError(f"target class {target} is out of range (0 to {base_logits.shape[1] - 1})")
    tops, lefts = positions(height, window, stride), positions(width, window, stride)
    corners = [(t, left) for t in tops for left in lefts]
    # Positions not reached when on_step stops the run stay NaN.
    totals = torch.full((len(corners),), float("nan"))
    probs, best = torch.full((len(corners),), float("nan")), torch.full((len(corners),), -1, dtype=torch.long)
    evaluate = _evaluator(net, x, layer, c, classes, window, fill, path, bases)
    stopped = False
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        total, logits = evaluate(batch)
        totals[first : first + len(batch)] = total.cpu()
        if classes:
            p = logits.softmax(dim=1)
            probs[first : first + len(batch)] = p[:, target].cpu()
            best[first : first + len(batch)] = p.argmax(dim=1).cpu()
        done = first + len(batch)
        if on_step is not None and on_step(StepEvent(done, len(corners), {}, time.perf_counter() - start)):
            stopped = True
            break
    shape = (len(tops), len(lefts))
    return OcclusionResult(
        layer, c, window, stride, fill, tops, lefts, totals.view(shape), float(base_total[0]), projection,
        target, probs.view(shape) if classes else None, best.view(shape) if classes else None,
        time.perf_counter() - start, stopped)


def _check(window: int, stride: int, fill: float, batch_size: int, height: int, width: int) -> None:
    if window < 1 or stride < 1 or batch_size < 1:
        raise UsageError(f"window, stride and batch size must be at least 1, got {window}, {stride}, {batch_size}")
    if window > min(height, width):
        raise UsageError(f"the {window}-pixel window is larger than the {width}×{height} image")
    if not 0.0 <= fill <= 1.0:
        raise UsageError(f"fill must be a grey level between 0 and 1, got {fill}")


Evaluate = Callable[[list[tuple[int, int]]], tuple[Tensor, Tensor]]


def _evaluator(net: Network, x: Tensor, layer: str, channel: int, classes: bool, window: int, fill: float,
               path: list[Step], bases: list[Tensor] | None) -> Evaluate:
    """A function of a batch of square corners: its totals (B,) and logits (B, classes) (empty without).
    With ``bases`` (every step's output for the unoccluded image along ``path``) each occluded image is
    recomputed only where the square changes it; without, it runs in full."""
    if bases is None:
        def full(batch: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
            occluded = x.expand(len(batch), -1, -1, -1).clone()
            for b, (t, left) in enumerate(batch):
                occluded[b, :, t : t + window, left : left + window] = fill
            return _evaluate(net, occluded, layer, channel, classes)

        return full
    with torch.no_grad():
        normalised = net.normalize(x)
        grey = net.normalize(torch.full((1, 3, 1, 1), fill, device=x.device))  # (1, 3, 1, 1)
    at = [s.name for s in path].index(layer)
    plane = bases[at][0, channel]
    unoccluded = float(plane.double().sum())
    only = None if classes else channel  # without a classifier only this map of the layer is needed

    def partial(batch: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        kept, last = inc.occluded_regions(path, bases, normalised, inc.squares(normalised, grey, batch, window),
                                          layer, only)
        values = kept.values[:, channel if kept.values.shape[1] > 1 else 0]
        total = unoccluded - inc.region_sums(plane, kept) + values.double().sum(dim=(1, 2))
        if not classes:
            return total.float(), torch.empty(0, 0)
        return total.float(), _head(net, inc.paste(bases[-1], last))

    return partial


def _head(net: Network, features: Tensor) -> Tensor:
    """The classifier's logits for the last maps, in eval mode (dropout off); the caller's mode comes back."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            return net.head(features)
    finally:
        net.train(was_training)


def _evaluate(net: Network, x: Tensor, layer: str, channel: int, classes: bool) -> tuple[Tensor, Tensor]:
    """Total activation of ``channel`` of ``layer`` per image (B,), and the logits (B, classes) when wanted."""
    with torch.no_grad():
        if not classes:
            return net(x, [layer])[layer][:, channel].sum(dim=(1, 2)), torch.empty(0, 0)
        last = steps(net)[-1].name
        feats = net(x, [layer, last])  # the features have no dropout; the head runs in eval mode
        return feats[layer][:, channel].sum(dim=(1, 2)), _head(net, feats[last])
