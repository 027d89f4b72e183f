"""Receptive-field boxes against a brute-force computation: the input pixels whose gradient reaches a unit
when every filter is positive and every pool averages its window (so that no path is switched off)."""

from __future__ import annotations

import pytest
import torch

from stylegram.nets.vgg import VGG
from stylegram.nets.zfnet import ZFNET, ZFNet, scaled
from stylegram.visualize.layers import Step, run_step, steps, upto
from stylegram.visualize.receptive import receptive_box, receptive_field


def _support_box(path: list[Step], norm: torch.nn.Module, image: torch.Tensor,
                 unit: tuple[int, int]) -> tuple[int, int, int, int]:
    x = image.clone().requires_grad_(True)
    h = norm(x)
    for step in path:
        h = run_step(Step(step.name, "avgpool", *step.geometry) if step.kind == "maxpool" else step, h)
    (grad,) = torch.autograd.grad(h[0, :, unit[0], unit[1]].sum(), x)
    rows = grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def _positive(net: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.fill_(0.01 if name.endswith("weight") else 0.1)
    return net


@pytest.mark.parametrize(("arch", "layer", "size"), [("vgg", "relu3_2", (52, 44)), ("vgg", "pool2", (30, 37)),
                                                     ("zf", "pool2", (96, 90)), ("zf", "relu1", (40, 33))])
def test_boxes_match_brute_force(arch: str, layer: str, size: tuple[int, int], one_thread: None) -> None:
    net = _positive(VGG("vgg11", pooling="max") if arch == "vgg" else ZFNet(scaled(ZFNET, 0.05), num_classes=2,
                                                                           hidden=(4, 4)))
    assert isinstance(net, VGG | ZFNet)
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) + 0.5
    path = upto(net, layer)
    with torch.no_grad():
        out = net(image, [layer])[layer]
    rows, cols = out.shape[-2:]
    for y, x in {(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 3), (1, cols - 2)}:
        y, x = max(0, y), max(0, x)
        assert receptive_box(net, layer, y, x, *size) == _support_box(path, net.normalize, image, (y, x)), (y, x)


def test_known_fields() -> None:
    vgg = VGG("vgg16")
    assert receptive_field(vgg, "relu5_3").size == 196 and receptive_field(vgg, "relu5_3").jump == 16
    assert receptive_field(vgg, "relu1_1").size == 3
    zf = ZFNet(scaled(ZFNET, 0.05), num_classes=2, hidden=(4, 4))
    assert [s.kind for s in steps(zf)][:4] == ["conv", "relu", "maxpool", "norm"]
    assert receptive_field(zf, "conv1").size == 7 and receptive_field(zf, "pool1").size == 11
