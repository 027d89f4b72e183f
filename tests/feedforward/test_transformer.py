"""The Johnson transform network: sizes in and out, instance normalisation, width, upsampling, range."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylegram.nets.transformer import (
    ResidualBlock,
    TransformerNet,
    Upsample,
    channels_for,
    parameter_count,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(width=0.5).eval()


@pytest.mark.parametrize(("h", "w"), [(33, 47), (32, 32), (8, 8), (9, 61), (64, 35)])
def test_any_size_in_same_size_out_within_unit_range(net: TransformerNet, h: int, w: int) -> None:
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, h, w)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert float(y.min()) > 0.0 and float(y.max()) < 1.0  # the sigmoid keeps every pixel strictly in range


def test_caller_tensor_is_not_modified(net: TransformerNet) -> None:
    x = torch.rand(1, 3, 21, 19)
    before = x.clone()
    with torch.no_grad():
        net(x)
    assert torch.equal(x, before)


def test_output_of_an_image_does_not_depend_on_the_rest_of_the_batch() -> None:
    torch.manual_seed(1)
    net = TransformerNet(width=0.5)
    gen = torch.Generator().manual_seed(2)
    a = torch.rand(1, 3, 24, 28, generator=gen)
    others = torch.rand(3, 3, 24, 28, generator=gen) * 0.2 + 0.8  # very different statistics
    for mode in (net.train, net.eval):  # instance norm uses per-image statistics in both modes
        mode()
        with torch.no_grad():
            alone = net(a)
            batched = net(torch.cat([others[:2], a, others[2:]]))[2:3]
        torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_instance_norm_normalises_each_image_and_channel_on_its_own() -> None:
    torch.manual_seed(3)
    net = TransformerNet(width=0.5)
    norm = net.down[0].norm
    assert isinstance(norm, nn.InstanceNorm2d) and norm.affine and not norm.track_running_stats
    with torch.no_grad():
        norm.weight.fill_(1.0)
        norm.bias.zero_()
        features = net.down[0].conv(torch.rand(3, 3, 20, 20) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1))
        out = norm(features)
    mean, std = out.mean(dim=(2, 3)), out.std(dim=(2, 3), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-3, rtol=0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_architecture_matches_the_paper_shape() -> None:
    net = TransformerNet()
    assert channels_for(1.0) == (32, 64, 128)
    assert sum(isinstance(m, ResidualBlock) for m in net.modules()) == 5
    ups = [m for m in net.modules() if isinstance(m, Upsample)]
    assert len(ups) == 2
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9)
    assert [c.stride for c in convs[1:3]] == [(2, 2), (2, 2)]
    assert all(c.kernel_size == (3, 3) for c in convs[1:-1])
    assert all(c.padding == (0, 0) for c in convs)  # padding is done by the reflection layers
    x = torch.rand(1, 3, 32, 36)
    with torch.no_grad():
        assert net.down(x).shape == (1, 128, 8, 9)


def test_half_width_has_about_a_quarter_of_the_parameters() -> None:
    full, half = parameter_count(TransformerNet(1.0)), parameter_count(TransformerNet(0.5))
    assert 1_600_000 < full < 1_700_000  # Johnson's network: about 1.68 M parameters
    assert 0.24 < half / full < 0.26


@pytest.mark.parametrize("width", [0, -1, 5, float("nan"), "1"])
def test_bad_width_is_refused(width: object) -> None:
    with pytest.raises(ValueError, match="width"):
        TransformerNet(width=width)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 1, 32, 32), (1, 3, 7, 32)])
def test_bad_input_shapes_are_refused(net: TransformerNet, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"RGB|at least"):
        net(torch.rand(*shape))


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(4)
    net = TransformerNet(width=0.5)
    net(torch.rand(2, 3, 17, 23)).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert all(float(p.grad.abs().sum()) > 0 for p in net.parameters() if p.grad is not None)
