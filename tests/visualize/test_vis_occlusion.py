"""Occlusion on a network whose answer is known, against direct evaluation, batched and truncated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylegram.nets.vgg import VGG, Normalization
from stylegram.nets.zfnet import Conv, ZFNet
from stylegram.visualize.occlusion import occlusion, positions


def _brightness_net() -> ZFNet:
    """One 1×1 convolution that undoes the input normalisation and sums R + G + B, so relu1's single map is
    each pixel's brightness and its total is the image's summed brightness."""
    net = ZFNet((Conv(1, 1),), num_classes=3, hidden=(4,), pooled=1).freeze()
    mean, std = torch.tensor(Normalization.TORCHVISION_MEAN), torch.tensor(Normalization.TORCHVISION_STD)
    with torch.no_grad():
        net.convs["conv1"].weight.copy_(std.view(1, 3, 1, 1))
        net.convs["conv1"].bias.fill_(float(mean.sum()))
    return net


def test_total_activation_is_the_known_sum() -> None:
    net = _brightness_net()
    image = torch.rand(1, 3, 20, 23, generator=torch.Generator().manual_seed(0))
    window, stride, fill = 6, 4, 0.25
    r = occlusion(net, image, "relu1", window, stride, fill, batch_size=5)
    tops, lefts = positions(20, window, stride), positions(23, window, stride)
    # Until the square has covered the far edge; the last one overhangs and is clipped there.
    assert (r.tops, r.lefts) == (tops, lefts) == ((0, 4, 8, 12, 16), (0, 4, 8, 12, 16, 20))
    total = float(image.sum())
    assert r.unoccluded == pytest.approx(total, rel=1e-5)
    for i, t in enumerate(tops):
        for j, left in enumerate(lefts):
            under = image[..., t : t + window, left : left + window]
            expected = total - float(under.sum()) + fill * under.numel()
            assert float(r.activation[i, j]) == pytest.approx(expected, rel=1e-5)


def test_class_maps_equal_direct_evaluation() -> None:
    net = _brightness_net()
    torch.manual_seed(3)
    net.classifier["fc6"].weight.normal_()
    net.classifier["fc7"].weight.normal_()
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    r = occlusion(net, image, "relu1", 8, 4, 0.5, target=2, batch_size=3)
    assert r.target == 2 and r.probability is not None and r.predicted is not None
    for i, t in enumerate(r.tops):
        for j, left in enumerate(r.lefts):
            x = image.clone()
            x[..., t : t + 8, left : left + 8] = 0.5
            p = F.softmax(net.classify(x), dim=1)[0]
            assert float(r.probability[i, j]) == pytest.approx(float(p[2]), abs=1e-6)
            assert int(r.predicted[i, j]) == int(p.argmax())


def test_batch_size_does_not_change_the_maps(vgg11: VGG, one_thread: None) -> None:
    image = torch.rand(1, 3, 36, 36, generator=torch.Generator().manual_seed(2))
    a = occlusion(vgg11, image, "relu3_2", 12, 6, batch_size=1)
    b = occlusion(vgg11, image, "relu3_2", 12, 6, batch_size=7)
    assert a.channel == b.channel
    assert torch.allclose(a.activation, b.activation, rtol=1e-5)
    assert a.probability is None and a.predicted is None  # no classifier, no panels (d), (e)


def test_runs_only_up_to_the_layer(vgg11: VGG) -> None:
    net = VGG("vgg11", pooling="max").freeze()
    net.load_state_dict(vgg11.state_dict())
    with torch.no_grad():
        net.convs["conv4_1"].weight.fill_(float("nan"))  # anything that ran conv4_1 would turn NaN
    r = occlusion(net, torch.rand(1, 3, 24, 24), "relu3_2", 8, 8)
    assert torch.isfinite(r.activation).all()


def test_stopping_leaves_the_rest_unmeasured() -> None:
    r = occlusion(_brightness_net(), torch.rand(1, 3, 12, 12), "relu1", 4, 2, batch_size=4, on_step=lambda e: True)
    assert r.stopped
    flat = r.activation.flatten()
    assert torch.isfinite(flat[:4]).all() and torch.isnan(flat[4:]).all()


def test_bad_windows_are_refused() -> None:
    net = _brightness_net()
    with pytest.raises(ValueError, match="larger than the 12×10 image"):
        occlusion(net, torch.rand(1, 3, 10, 12), "relu1", 11, 2)
    with pytest.raises(ValueError, match="at least 1"):
        occlusion(net, torch.rand(1, 3, 10, 12), "relu1", 4, 0)
    with pytest.raises(ValueError, match="grey level"):
        occlusion(net, torch.rand(1, 3, 10, 12), "relu1", 4, 2, fill=2.0)


@pytest.mark.parametrize(("net_name", "layer"), [("vgg11", "pool3"), ("vgg11", "relu3_2"), ("small_zfnet", "relu5")])
def test_recomputing_only_the_changed_region_equals_full_passes(net_name: str, layer: str,
                                                                request: pytest.FixtureRequest,
                                                                one_thread: None) -> None:
    # VGG: only the chosen map is carried past the last convolution (through a ReLU, or a ReLU and a pool);
    # ZFNet: overlapping pools, LRN and a classifier, so every map goes all the way.
    net = request.getfixturevalue(net_name)
    image = torch.rand(1, 3, 50, 47, generator=torch.Generator().manual_seed(5))
    full = occlusion(net, image, layer, 13, 9, 0.3, incremental=False)  # squares touch every edge
    fast = occlusion(net, image, layer, 13, 9, 0.3, incremental=True, batch_size=4)
    drop_full, drop_fast = full.unoccluded - full.activation, fast.unoccluded - fast.activation
    assert float((drop_full - drop_fast).abs().max()) <= 1e-4 * float(drop_full.abs().max())
    assert fast.channel == full.channel and fast.unoccluded == pytest.approx(full.unoccluded, rel=1e-5)
    # The projection (panel c) comes from the same recorded pass that the occluded images are patched into.
    torch.testing.assert_close(fast.projection.image, full.projection.image)
    if full.probability is not None:
        assert fast.probability is not None and fast.predicted is not None
        assert torch.allclose(full.probability, fast.probability, atol=1e-5)
        assert torch.equal(full.predicted, fast.predicted)


def test_average_pooling_falls_back_to_full_passes() -> None:
    from stylegram.visualize.incremental import supported
    from stylegram.visualize.layers import upto

    assert not supported(upto(VGG("vgg11", pooling="avg"), "relu3_1"))
    assert supported(upto(VGG("vgg11", pooling="max"), "relu3_1"))


def test_the_job_counts_the_positions_it_will_run(tmp_path: Path) -> None:
    from stylegram.visualize.jobs import OcclusionJob
    from stylegram.visualize.options import OcclusionOptions

    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (21, 30, 3), dtype=np.uint8)).save(path)
    options = OcclusionOptions(layer="relu1", window=6, stride=4, size=0)
    job = OcclusionJob(_brightness_net(), {"network": "test"}, path, options, tmp_path / "out.png")
    result = job.run()
    assert job.positions == result.activation.numel() == 5 * 7
    assert (tmp_path / "out.png").exists()
