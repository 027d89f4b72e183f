"""Nothing is left behind: no hooks, the caller's network and image exactly as they were."""

from __future__ import annotations

import torch
from torch import nn

from stylegram.nets.vgg import VGG
from stylegram.nets.zfnet import ZFNET, ZFNet, scaled
from stylegram.visualize import occlusion, project, top_activations


def _hooks(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in net.modules())


def _snapshot(net: nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], list[bool]]:
    return ({k: v.clone() for k, v in net.state_dict().items()}, [p.requires_grad for p in net.parameters()],
            [m.training for m in net.modules()])


def _unchanged(net: nn.Module, before: tuple[dict[str, torch.Tensor], list[bool], list[bool]]) -> bool:
    state, grads, modes = _snapshot(net)
    return (all(torch.equal(state[k], before[0][k]) for k in state) and grads == before[1] and modes == before[2]
            and all(p.grad is None for p in net.parameters()))


def test_no_hooks_and_nothing_modified(one_thread: None) -> None:
    torch.manual_seed(0)
    # Unfrozen and in training mode, as a caller might hand them over: both must come back as they were.
    nets: list[tuple[VGG | ZFNet, str]] = [(VGG("vgg11", pooling="max"), "relu3_1"),
                                           (ZFNet(scaled(ZFNET, 0.1), num_classes=3, hidden=(8, 8)), "relu5")]
    for net, layer in nets:
        net.train()
        before = _snapshot(net)
        image = torch.rand(1, 3, 64, 64)
        image_before = image.clone()
        project(net, image, layer, rule="guided")
        top_activations(net, [image, image * 0.5], [layer], k=1, channels=[0], rule="deconvnet")
        occlusion(net, image, layer, 32, 32)
        assert _hooks(net) == 0
        assert _unchanged(net, before)
        assert torch.equal(image, image_before) and not image.requires_grad
        assert not torch.nn.modules.module._global_forward_hooks
        assert not torch.nn.modules.module._global_backward_hooks
