"""Unpooling from recorded switches against autograd, and whole projections against autograd's gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylegram.nets.vgg import VGG
from stylegram.nets.zfnet import ZFNet
from stylegram.visualize.layers import upto
from stylegram.visualize.project import descend, forward_record, project, project_units
from stylegram.visualize.switches import unpool


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2)])
def test_unpooling_is_the_max_pools_transposed_jacobian(kernel: int, stride: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 13, 11, generator=g, requires_grad=True)
    pooled, switches = F.max_pool2d(x, kernel, stride, ceil_mode=True, return_indices=True)
    signal = torch.randn(3, *pooled.shape[1:], generator=g)  # three signals through one recording
    ours = unpool(signal, switches, x.shape)
    for b in range(3):
        (expected,) = torch.autograd.grad(pooled, x, signal[b : b + 1], retain_graph=True)
        assert torch.allclose(ours[b : b + 1], expected, atol=1e-6)


def test_overlapping_pools_share_maxima_and_assignment_would_lose_them() -> None:
    x = torch.randn(1, 8, 15, 15, generator=torch.Generator().manual_seed(1), requires_grad=True)
    pooled, switches = F.max_pool2d(x, 3, 2, return_indices=True)
    signal = torch.rand(pooled.shape)
    (expected,) = torch.autograd.grad(pooled, x, signal)
    assert torch.allclose(unpool(signal, switches, x.shape), expected, atol=1e-6)
    # F.max_unpool2d assigns: where two windows chose the same input, one value is lost.
    assigned = F.max_unpool2d(signal, switches, 3, 2, output_size=x.shape[-2:])
    assert not torch.allclose(assigned, expected, atol=1e-3)


def _autograd_projection(net: VGG | ZFNet, image: torch.Tensor, layer: str, unit: tuple[int, int, int]) -> torch.Tensor:
    x = image.clone().requires_grad_(True)
    feats = net(x, [layer])[layer]
    c, y, xx = unit
    (grad,) = torch.autograd.grad(feats[0, c, y, xx], x)
    return grad * feats[0, c, y, xx].detach()


@pytest.mark.parametrize("net_name", ["vgg11", "small_zfnet"])
def test_gradient_rule_is_autograds_gradient(net_name: str, request: pytest.FixtureRequest, one_thread: None) -> None:
    net = request.getfixturevalue(net_name)
    layer = "relu3_2" if net_name == "vgg11" else "relu5"  # ZFNet: LRN and overlapping pools on the way
    image = torch.rand(1, 3, 72, 80, generator=torch.Generator().manual_seed(2))
    p = project(net, image, layer, rule="gradient")
    expected = _autograd_projection(net, image, layer, (p.channel, *p.position))
    scale = float(expected.abs().max())
    assert scale > 0
    assert float((p.image - expected).abs().max()) <= 1e-5 * scale


def test_batched_units_equal_one_at_a_time(vgg11: VGG, one_thread: None) -> None:
    image = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(3))
    path, rec = forward_record(vgg11, image, "relu4_1")
    units = [(0, 1, 2), (5, 2, 3), (5, 0, 0)]
    together = project_units(vgg11, path, rec, units, "guided", image.shape[-2:])
    for unit, p in zip(units, together, strict=True):
        alone = project(vgg11, image, "relu4_1", unit[0], "guided", (unit[1], unit[2]))
        assert torch.allclose(p.image, alone.image, atol=1e-6)
        assert p.box == alone.box and p.activation == alone.activation


def test_descend_of_zero_is_zero(vgg11: VGG) -> None:
    image = torch.rand(1, 3, 32, 32)
    path, rec = forward_record(vgg11, image, "pool2")
    assert rec.features is not None and path == upto(vgg11, "pool2")
    out = descend(vgg11, path, rec, torch.zeros(2, *rec.features.shape[1:]), "deconvnet")
    assert out.shape == (2, 3, 32, 32) and not out.any()
