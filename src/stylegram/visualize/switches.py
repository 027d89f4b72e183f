"""The forward pass a projection goes back down: each max pool's switches and each ReLU's mask, recorded.

Zeiler & Fergus (§2.1) unpool by putting each pooled value back where its maximum came from, the *switch*.
:func:`unpool` does this with a scatter-*add* over the recorded indices: with overlapping pools (ZFNet's 3×3
windows every 2 pixels) one input position can be the maximum of several windows, and it must receive the sum
of their values, which is exactly the max pool's transposed Jacobian. ``F.max_unpool2d`` *assigns* instead, so
with overlap one window's value silently overwrites another's (a test shows both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from stylegram.visualize.layers import Step, run_step


@dataclass
class Recording:
    """What the way down needs from the way up, per step name.

    ``masks``: where each ReLU's input was positive, (1, C, H, W) bool. ``switches``: each max pool's argmax
    indices, (1, C, h, w) int64 into the flattened (H·W) input plane. ``inputs``: the input of every layer that
    needs it (contrast normalisation, average pooling and convolutions keep only its shape).
    ``features`` is the output of the last step.
    """

    masks: dict[str, Tensor] = field(default_factory=dict)
    switches: dict[str, Tensor] = field(default_factory=dict)
    inputs: dict[str, Tensor] = field(default_factory=dict)
    shapes: dict[str, torch.Size] = field(default_factory=dict)
    outputs: dict[str, Tensor] = field(default_factory=dict)
    features: Tensor | None = None


def record(path: list[Step], x: Tensor, keep: tuple[str, ...] = ()) -> Recording:
    """Run ``path`` on ``x`` (the network's normalised input, (1, 3, H, W)), recording switches and masks;
    the outputs of the layers named in ``keep`` are kept too. No autograd graph is built."""
    rec = Recording()
    h = x
    with torch.no_grad():
        for step in path:
            rec.shapes[step.name] = h.shape
            if step.kind == "relu":
                rec.masks[step.name] = h > 0
                h = F.relu(h)
            elif step.kind == "maxpool":
                h, idx = F.max_pool2d(h, step.kernel, step.stride, step.padding, ceil_mode=True, return_indices=True)
                rec.switches[step.name] = idx
            else:
                if step.kind == "norm":
                    rec.inputs[step.name] = h
                h = run_step(step, h)
            if step.name in keep:
                rec.outputs[step.name] = h
    rec.features = h
    return rec


def unpool(signal: Tensor, switches: Tensor, input_shape: torch.Size) -> Tensor:
    """Put each value of ``signal`` (B, C, h, w) back at its switch in a zero map of ``input_shape``
    (1 or B, C, H, W), summing where windows share a maximum; ``switches`` (1 or B, C, h, w)."""
    b, c, hh, ww = signal.shape
    height, width = input_shape[-2:]
    index = switches.expand(b, c, hh, ww).reshape(b, c, hh * ww)
    out = signal.new_zeros(b, c, height * width)
    out.scatter_add_(2, index, signal.reshape(b, c, hh * ww))
    return out.view(b, c, height, width)
