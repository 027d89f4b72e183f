"""The three ReLU rules against results computed by hand on a two-layer network."""

from __future__ import annotations

import pytest
import torch

from stylegram.nets.vgg import Normalization
from stylegram.nets.zfnet import Conv, ZFNet
from stylegram.visualize.project import project, relu_rule


def _two_layer_net(pixel: torch.Tensor) -> ZFNet:
    """conv1: 3 -> 3 (1×1, identity weights), conv2: 3 -> 1 (1×1, weights 1, 1, -1), with biases chosen so that
    for ``pixel`` the first layer's pre-activations are f1 = (1, -1, 2) and the second's f2 = 1."""
    net = ZFNet((Conv(3, 1), Conv(1, 1)), num_classes=2, hidden=(2,), pooled=1).freeze()
    normalised = Normalization("torchvision")(pixel)[0, :, 0, 0]
    with torch.no_grad():
        net.convs["conv1"].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        net.convs["conv1"].bias.copy_(torch.tensor([1.0, -1.0, 2.0]) - normalised)
        net.convs["conv2"].weight.copy_(torch.tensor([1.0, 1.0, -1.0]).view(1, 3, 1, 1))
        net.convs["conv2"].bias.fill_(2.0)  # f2 = 1·1 + 1·0 − 1·2 + 2 = 1
    return net


@pytest.mark.parametrize(("rule", "expected"), [
    # Down from relu2 (value 1): conv2ᵀ gives R = (1, 1, −1) at relu1, whose input was f1 = (1, −1, 2).
    ("gradient", [1.0, 0.0, -1.0]),  # R·[f1 > 0]
    ("deconvnet", [1.0, 1.0, 0.0]),  # max(R, 0)
    ("guided", [1.0, 0.0, 0.0]),  # R·[f1 > 0]·[R > 0]
])
def test_rules_match_the_hand_computation(rule: str, expected: list[float]) -> None:
    pixel = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1)
    net = _two_layer_net(pixel)
    p = project(net, pixel, "relu2", 0, rule)
    assert p.activation == pytest.approx(1.0)
    # conv1ᵀ is the identity; the input normalisation (x − mean)/std contributes 1/std per channel.
    std = torch.tensor(Normalization.TORCHVISION_STD)
    assert torch.allclose(p.image.view(3), torch.tensor(expected) / std, atol=1e-6)


def test_relu_rule_elementwise() -> None:
    r = torch.tensor([2.0, -3.0, 4.0, -5.0])
    positive = torch.tensor([True, True, False, False])
    assert relu_rule(r, positive, "gradient").tolist() == [2.0, -3.0, 0.0, -0.0]
    assert relu_rule(r, positive, "deconvnet").tolist() == [2.0, 0.0, 4.0, 0.0]
    assert relu_rule(r, positive, "guided").tolist() == [2.0, 0.0, 0.0, 0.0]


def test_unknown_rule_and_bad_channel_are_clear_errors() -> None:
    pixel = torch.rand(1, 3, 1, 1)
    net = _two_layer_net(pixel)
    with pytest.raises(ValueError, match="rule must be one of"):
        project(net, pixel, "relu2", rule="backprop")
    with pytest.raises(ValueError, match="channel 3 is out of range"):
        project(net, pixel, "relu2", channel=3)
    with pytest.raises(ValueError, match="no layer 'relu7'"):
        project(net, pixel, "relu7")
