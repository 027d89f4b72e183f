"""Projections of single activations down to pixel space (Zeiler & Fergus 2014, §2.1), three rules in one walk.

Forward: the image runs up to the chosen layer, recording each max pool's switches and each ReLU's mask
(:mod:`stylegram.visualize.switches`). Down: one activation is kept (all others zeroed) and the signal goes
back layer by layer: unpooled through the switches, rectified by the rule, filtered with the layer's transposed
filters (no biases), and through the input normalisation's transpose into the RGB [0, 1] image space. The rules
differ only at each ReLU, with R the signal from above and f the ReLU's forward input:

* ``gradient`` (Simonyan et al. 2013): ``R·[f > 0]``: the exact gradient of the activation;
* ``deconvnet`` (Zeiler & Fergus): ``max(R, 0)``: the deconvnet's own rectification, blind to f;
* ``guided`` (Springenberg et al. 2014): ``R·[f > 0]·[R > 0]``.

The projection starts from the activation's value (not 1), so it is ``value ×`` the gradient-like map that
attribution libraries return. Where the paper is silent, this code follows the gradient: contrast
normalisation goes down through its transposed Jacobian, and *average* pooling, which has no switches, through
its transpose (each value spread evenly over its window); :attr:`Projection.pooling` says which was used.
Several activations of one image go down together as a batch (:func:`project_units`), one forward for all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from stylegram.core.errors import UsageError
from stylegram.visualize.layers import Network, Step, check_fits, device_of, run_step, upto
from stylegram.visualize.receptive import Box, field_of
from stylegram.visualize.switches import Recording, record, unpool

Rule = Literal["deconvnet", "guided", "gradient"]
RULES: tuple[str, ...] = get_args(Rule)
Unit = tuple[int, int, int]  # (channel, y, x) in the layer's feature map


@dataclass(frozen=True)
class Projection:
    """One activation projected to pixel space.

    ``image``: (1, 3, H, W) float32 in the input's RGB space (not clamped: signed values, to be displayed by
    :func:`stylegram.visualize.figures.show_projection`). ``activation``: the unit's value; ``channel`` and
    ``position`` (y, x) locate it in ``layer``; ``box`` is its receptive field (top, left, bottom, right).
    """

    image: Tensor
    layer: str
    channel: int
    position: tuple[int, int]
    activation: float
    box: Box
    rule: str
    pooling: str


def check_rule(rule: str) -> Rule:
    if rule not in RULES:
        raise UsageError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    return rule  # type: ignore[return-value]


def check_image(image: Tensor) -> None:
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise UsageError(f"expected one RGB image of shape (1, 3, H, W), got {shape}")


def forward_record(net: Network, image: Tensor, layer: str) -> tuple[list[Step], Recording]:
    """The steps up to ``layer`` and the recording of ``image`` (moved to the network's device) through them."""
    check_image(image)
    path = upto(net, layer)
    check_fits(path, image.shape[-2], image.shape[-1])
    x = image.detach().to(device_of(net), torch.float32)
    with torch.no_grad():
        return path, record(path, net.normalize(x))


def project(net: Network, image: Tensor, layer: str, channel: int | None = None, rule: str = "deconvnet",
            position: tuple[int, int] | None = None) -> Projection:
    """Project one activation of ``layer`` for ``image`` ((1, 3, H, W) RGB in [0, 1]) back to pixel space.

    ``channel`` defaults to the map holding the layer's strongest activation, ``position`` to that map's
    maximum. Neither the network nor the image is modified.
    """
    rule = check_rule(rule)
    path, rec = forward_record(net, image, layer)
    return project_recorded(net, path, rec, image.shape[-2:], channel, rule, position)


def project_recorded(net: Network, path: list[Step], rec: Recording, image_hw: Sequence[int],
                     channel: int | None = None, rule: Rule = "deconvnet",
                     position: tuple[int, int] | None = None) -> Projection:
    """:func:`project` from a recording of the image through ``path`` (the steps up to the layer) already made."""
    assert rec.features is not None
    feats = rec.features[0]  # (C, h, w)
    c = int(feats.flatten(1).amax(1).argmax()) if channel is None else _check_channel(channel, feats.shape[0])
    if position is None:
        flat = int(feats[c].argmax())
        position = (flat // feats.shape[-1], flat % feats.shape[-1])
    y, x = position
    if not (0 <= y < feats.shape[1] and 0 <= x < feats.shape[2]):
        raise UsageError(f"position {y},{x} is outside {path[-1].name}'s {feats.shape[1]}×{feats.shape[2]} map")
    return project_units(net, path, rec, [(c, y, x)], rule, image_hw)[0]


def _check_channel(channel: int, count: int) -> int:
    if not 0 <= channel < count:
        raise UsageError(f"channel {channel} is out of range: the layer has {count} maps (0 to {count - 1})")
    return channel


def project_units(net: Network, path: list[Step], rec: Recording, units: Sequence[Unit], rule: Rule,
                  image_hw: Sequence[int]) -> list[Projection]:
    """Projections of several ``units`` of the last layer of ``path`` in one batched walk down ``rec``."""
    assert rec.features is not None
    feats = rec.features[0]
    signal = torch.zeros((len(units), *feats.shape), device=feats.device)  # (K, C, h, w)
    for i, (c, y, x) in enumerate(units):
        signal[i, c, y, x] = feats[c, y, x]
    pixels = descend(net, path, rec, signal, rule)  # (K, 3, H, W)
    field = field_of(path)
    height, width = int(image_hw[0]), int(image_hw[1])
    pooling = _pooling_note(path)
    return [Projection(pixels[i : i + 1].cpu(), path[-1].name, c, (y, x), float(feats[c, y, x]),
                       field.box(y, x, height, width), rule, pooling)
            for i, (c, y, x) in enumerate(units)]


def descend(net: Network, path: list[Step], rec: Recording, signal: Tensor, rule: Rule) -> Tensor:
    """Take ``signal`` (K, C, h, w) at the output of ``path`` down to the RGB input: (K, 3, H, W)."""
    r = signal
    with torch.no_grad():
        for step in reversed(path):
            r = _down(step, r, rec, rule)
        return _transpose(net.normalize, torch.zeros(r.shape, device=r.device), r)


def _down(step: Step, r: Tensor, rec: Recording, rule: Rule) -> Tensor:
    shape = rec.shapes[step.name]
    if step.kind == "relu":
        return relu_rule(r, rec.masks[step.name], rule)
    if step.kind == "maxpool":
        return unpool(r, rec.switches[step.name], shape)
    if step.kind == "conv":
        assert step.conv is not None
        full = (r.shape[0], *shape[1:])
        # The transposed convolution that maps back onto exactly the input's size (output padding included).
        return conv_input_grad(full, step.conv.weight.to(r.dtype), r, step.stride, step.padding)
    if step.kind == "avgpool":
        def pool(h: Tensor) -> Tensor:
            return F.avg_pool2d(h, step.kernel, step.stride, step.padding, ceil_mode=True)

        return _transpose(pool, torch.zeros((r.shape[0], *shape[1:]), device=r.device), r)
    source = rec.inputs[step.name]
    return _transpose(lambda h: run_step(step, h), source.expand(r.shape[0], *source.shape[1:]), r)


def conv_input_grad(shape: Sequence[int], weight: Tensor, r: Tensor, stride: int, padding: int) -> Tensor:
    """``r`` (K, C_out, h, w) through a convolution's transpose onto an input of ``shape`` (K, C_in, H, W)."""
    k = weight.shape[-1]
    # A transposed convolution maps h back to (h - 1)·s - 2p + k; output padding adds the rows and columns a
    # strided forward pass left out at the far edge, so the result lands on exactly the input's size.
    extra = [int(shape[d]) - ((r.shape[d] - 1) * stride - 2 * padding + k) for d in (2, 3)]
    return F.conv_transpose2d(r, weight, stride=stride, padding=padding, output_padding=tuple(extra))


def relu_rule(r: Tensor, positive: Tensor, rule: Rule) -> Tensor:
    """The signal ``r`` from above through a ReLU whose forward input was positive where ``positive``."""
    if rule == "gradient":
        return r * positive
    if rule == "deconvnet":
        return r.clamp_min(0)
    return r.clamp_min(0) * positive


def _transpose(fn: Callable[[Tensor], Tensor], at: Tensor, r: Tensor) -> Tensor:
    """The vector-Jacobian product ``r · ∂fn/∂x`` at ``at`` (for affine ``fn`` it does not depend on ``at``)."""
    with torch.enable_grad():
        x = at.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x), x, r)
    return grad


def _pooling_note(path: list[Step]) -> str:
    kinds = {s.kind for s in path}
    if "avgpool" in kinds:
        return "avg (no switches: each value spread evenly over its window)"
    return "max (switches)" if "maxpool" in kinds else "none"
