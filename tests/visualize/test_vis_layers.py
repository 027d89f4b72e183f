"""The walk's view of a network agrees with the network's own forward pass and shapes."""

from __future__ import annotations

import pytest
import torch

from stylegram.nets.vgg import VGG
from stylegram.nets.zfnet import ZFNet
from stylegram.visualize.layers import check_fits, map_shape, run_step, steps, upto


@pytest.mark.parametrize("net_name", ["vgg11", "small_zfnet"])
def test_walking_the_steps_is_the_networks_forward(net_name: str, request: pytest.FixtureRequest) -> None:
    net: VGG | ZFNet = request.getfixturevalue(net_name)
    image = torch.rand(1, 3, 71, 83)
    names = [s.name for s in steps(net)]
    expected = net(image, names)
    with torch.no_grad():
        h = net.normalize(image)
        for step in steps(net):
            h = run_step(step, h)
            assert torch.equal(h, expected[step.name]), step.name
            assert map_shape(upto(net, step.name), 71, 83) == tuple(h.shape[-2:]), step.name


def test_average_pooling_vgg_walks_with_average_pools() -> None:
    net = VGG("vgg11", pooling="avg").freeze()
    image = torch.rand(1, 3, 33, 35)
    assert {s.kind for s in steps(net)} >= {"avgpool"}
    with torch.no_grad():
        h = net.normalize(image)
        for step in upto(net, "pool3"):
            h = run_step(step, h)
    assert torch.equal(h, net(image, ["pool3"])["pool3"])


def test_too_small_images_are_refused(small_zfnet: ZFNet) -> None:
    check_fits(upto(small_zfnet, "pool5"), 47, 47)
    with pytest.raises(ValueError, match="too small for pool5"):
        check_fits(upto(small_zfnet, "pool5"), 46, 100)
