"""Small networks for the visualisation tests: a random VGG11 with max pooling and a narrow ZFNet."""

from __future__ import annotations

import pytest
import torch

from stylegram.nets.vgg import VGG
from stylegram.nets.zfnet import ZFNET, ZFNet, scaled


@pytest.fixture
def vgg11() -> VGG:
    torch.manual_seed(0)
    return VGG("vgg11", pooling="max").freeze()


@pytest.fixture
def small_zfnet() -> ZFNet:
    """The paper's geometry (7×7/2, overlapping 3×3/2 pools, LRN) with a tenth of the filters."""
    torch.manual_seed(0)
    return ZFNet(scaled(ZFNET, 0.1), num_classes=4, hidden=(16, 16)).freeze()
