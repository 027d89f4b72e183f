"""VGG architecture: names, truncation, pooling, normalisation, freezing."""

import pytest
import torch

from stylegram.nets.vgg import VGG, Normalization, deepest, layer_names, layer_specs


def test_layer_names_follow_the_caffe_convention() -> None:
    names = layer_names("vgg16")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "pool5"
    assert len(names) == 13 * 2 + 5
    assert "relu5_4" in layer_names("vgg19") and "relu5_4" not in names
    assert len(layer_names("vgg19")) == 16 * 2 + 5
    assert sum(s.kind == "conv" for s in layer_specs("vgg11")) == 8
    assert sum(s.kind == "conv" for s in layer_specs("vgg13")) == 10
    with pytest.raises(ValueError, match="unknown VGG"):
        layer_names("vgg12")


def test_named_features_have_the_expected_shapes(tiny_input: torch.Tensor) -> None:
    vgg = VGG("vgg16").freeze()
    out = vgg(tiny_input, ["relu1_1", "pool2", "conv3_3"])
    assert set(out) == {"relu1_1", "pool2", "conv3_3"}
    assert out["relu1_1"].shape == (1, 64, 32, 40)
    assert out["pool2"].shape == (1, 128, 8, 10)
    assert out["conv3_3"].shape == (1, 256, 8, 10)
    assert (out["relu1_1"] >= 0).all()


def test_runs_only_up_to_the_deepest_layer_asked_for(tiny_input: torch.Tensor) -> None:
    vgg = VGG("vgg16").freeze()
    with torch.no_grad():
        vgg.convs["conv2_1"].weight.fill_(float("nan"))  # anything that ran conv2_1 would turn NaN
    out = vgg(tiny_input, ["relu1_2"])
    assert torch.isfinite(out["relu1_2"]).all()
    assert torch.isnan(vgg(tiny_input, ["conv2_1"])["conv2_1"]).all()
    assert deepest(["relu3_1", "conv1_1", "pool2"]) == "relu3_1"


def test_unknown_layer_is_a_clear_error(tiny_input: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="no layer 'relu9_9'"):
        VGG("vgg16")(tiny_input, ["relu9_9"])


def test_pooling_switch() -> None:
    x = torch.rand(1, 3, 8, 8)
    avg, mx = VGG("vgg11", pooling="avg").freeze(), VGG("vgg11", pooling="max").freeze()
    mx.load_state_dict(avg.state_dict())
    relu = avg(x, ["relu1_1"])["relu1_1"]
    pa, pm = avg(x, ["pool1"])["pool1"], mx(x, ["pool1"])["pool1"]
    assert torch.allclose(pa, torch.nn.functional.avg_pool2d(relu, 2), atol=1e-6)
    assert torch.allclose(pm, torch.nn.functional.max_pool2d(relu, 2), atol=1e-6)
    with pytest.raises(ValueError):
        VGG("vgg16", pooling="min")  # type: ignore[arg-type]


def test_odd_sizes_keep_their_border() -> None:
    out = VGG("vgg16").freeze()(torch.rand(1, 3, 33, 45), ["pool1", "pool5"])
    assert out["pool1"].shape[-2:] == (17, 23)
    assert out["pool5"].shape[-2:] == (2, 2)


def test_caffe_normalisation_is_bgr_0_255_mean_subtracted() -> None:
    rgb = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 2, 2).contiguous()
    y = Normalization("caffe")(rgb)[0, :, 0, 0]
    expected = torch.tensor([0.9 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68])
    assert torch.allclose(y, expected, atol=1e-4)


def test_torchvision_normalisation_is_rgb_mean_std() -> None:
    rgb = torch.tensor([0.485, 0.456 + 0.224, 0.0]).view(1, 3, 1, 1)
    y = Normalization("torchvision")(rgb)[0, :, 0, 0]
    assert torch.allclose(y, torch.tensor([0.0, 1.0, -0.406 / 0.225]), atol=1e-5)


def test_callers_tensor_is_never_modified(tiny_input: torch.Tensor) -> None:
    before = tiny_input.clone()
    VGG("vgg11").freeze()(tiny_input, ["relu2_1"])
    assert torch.equal(before, tiny_input)


def test_frozen_network_gives_input_gradients_only(tiny_input: torch.Tensor) -> None:
    vgg = VGG("vgg11").freeze()
    x = tiny_input.clone().requires_grad_(True)
    vgg(x, ["relu2_1"])["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())
    assert not vgg.training


def test_classifier_head() -> None:
    vgg = VGG("vgg11", classifier=True, num_classes=10).freeze()
    assert vgg.classify(torch.rand(2, 3, 64, 64)).shape == (2, 10)
    with pytest.raises(RuntimeError, match="no classifier"):
        VGG("vgg11").classify(torch.rand(1, 3, 32, 32))


def test_rejects_non_rgb_batches() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        VGG("vgg11")(torch.rand(3, 32, 32), ["relu1_1"])
