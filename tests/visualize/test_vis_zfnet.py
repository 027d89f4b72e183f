"""ZFNet: the paper's shapes, the RMS renormalisation, its files, and a few training steps on drawn shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylegram.nets.zfnet import NORM, ZFNET, Conv, Pool, ZFNet, scaled, zf_layer_specs
from stylegram.visualize.shapes import CLASSES, write_shapes
from stylegram.visualize.train_zfnet import ZFTrainJob, ZFTrainOptions
from stylegram.visualize.zfnet_files import ZFNetFileError, load_zfnet, save_zfnet


def test_the_papers_feature_map_sizes(one_thread: None) -> None:
    net = ZFNet(hidden=(32, 32)).freeze()  # the paper's convolutions; narrow fully connected layers
    names = ["relu1", "pool1", "norm1", "relu2", "pool2", "relu3", "relu4", "relu5", "pool5"]
    out = net(torch.rand(1, 3, 224, 224), names)
    shapes = {n: tuple(t.shape[1:]) for n, t in out.items()}
    assert shapes == {"relu1": (96, 110, 110), "pool1": (96, 55, 55), "norm1": (96, 55, 55),
                      "relu2": (256, 26, 26), "pool2": (256, 13, 13), "relu3": (384, 13, 13),
                      "relu4": (384, 13, 13), "relu5": (256, 13, 13), "pool5": (256, 6, 6)}
    assert net.classifier["fc6"].in_features == 256 * 6 * 6
    assert net.classify(torch.rand(2, 3, 224, 224)).shape == (2, 1000)


def test_configuration_lists() -> None:
    specs = zf_layer_specs(ZFNET)
    assert [s.name for s in specs][:5] == ["conv1", "relu1", "pool1", "norm1", "conv2"]
    assert specs[0].kernel == 7 and specs[0].stride == 2
    assert [c.out for c in scaled(ZFNET, 0.5) if isinstance(c, Conv)] == [48, 128, 192, 192, 128]
    with pytest.raises(ValueError, match="at least one convolution"):
        zf_layer_specs((Pool(), NORM))
    with pytest.raises(ValueError, match="unknown ZFNet configuration item"):
        zf_layer_specs((Conv(4, 3), "X"))
    with pytest.raises(ValueError, match="no layer 'relu9'"):
        ZFNet(scaled(ZFNET, 0.05), hidden=(4, 4)).spec("relu9")


def test_rms_renormalisation_caps_only_the_large_filters() -> None:
    net = ZFNet((Conv(4, 3), Conv(2, 3)), num_classes=2, hidden=(2,), pooled=1)
    with torch.no_grad():
        w = net.convs["conv1"].weight
        w.copy_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)))
        w[1] *= 0.01  # RMS about 0.01: left alone
    before = net.convs["conv1"].weight.clone()
    count = net.renormalize_filters(0.1)
    rms = net.convs["conv1"].weight.pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert torch.allclose(rms[[0, 2, 3]], torch.full((3,), 0.1), atol=1e-6)
    assert torch.equal(net.convs["conv1"].weight[1], before[1])
    assert count >= 3
    # Direction kept: each capped filter is the old one scaled.
    ratio = net.convs["conv1"].weight[0] / before[0]
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-5)


def test_files_round_trip(tmp_path: Path, small_zfnet: ZFNet) -> None:
    path = save_zfnet(small_zfnet, tmp_path / "z.safetensors", ("a", "b", "c", "d"), 3, {"note": "test"})
    net, info = load_zfnet(path)
    assert info.classes == ("a", "b", "c", "d") and info.epoch == 3 and info.record == {"note": "test"}
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(net.classify(x), small_zfnet.classify(x))
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ZFNetFileError, match="not a readable"):
        load_zfnet(tmp_path / "bad.safetensors")
    with pytest.raises(ZFNetFileError, match="not found"):
        load_zfnet(tmp_path / "missing.safetensors")


def test_a_few_epochs_on_drawn_shapes(tmp_path: Path, one_thread: None) -> None:
    write_shapes(tmp_path / "data", per_class=6, size=56, seed=1)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(CLASSES)
    options = ZFTrainOptions(epochs=3, batch_size=8, size=48, width=0.1, hidden=16, checkpoint_every=2, seed=4)
    job = ZFTrainJob(tmp_path / "data", tmp_path / "run", options)
    first = job.run()
    assert [p.name for p in first.checkpoints] == ["epoch_002.safetensors", "epoch_003.safetensors"]
    assert all(torch.isfinite(torch.tensor(first.losses)))
    net, info = load_zfnet(first.checkpoints[-1])
    assert info.epoch == 3 and info.classes == tuple(sorted(CLASSES))
    for conv in net.convs.values():  # renormalised after every step
        assert float(conv.weight.pow(2).mean(dim=(1, 2, 3)).sqrt().max()) <= 0.1 + 1e-6
    again = ZFTrainJob(tmp_path / "data", tmp_path / "run2", options).run()
    assert again.losses == first.losses  # same seed, same data: the same run

    # Stopped after one epoch and resumed to three: the same weights and history as the run never stopped.
    ZFTrainJob(tmp_path / "data", tmp_path / "run3", options.replace(epochs=1)).run()
    with pytest.raises(ValueError, match="other options"):
        ZFTrainJob(tmp_path / "data", tmp_path / "run3", options.replace(lr=0.02), resume=True)
    resumed_job = ZFTrainJob(tmp_path / "data", tmp_path / "run3", options, resume=True)
    assert resumed_job.first_epoch == 2
    resumed = resumed_job.run()
    assert resumed.losses == first.losses and resumed.accuracy == first.accuracy
    assert [p.name for p in resumed.checkpoints] == ["epoch_002.safetensors", "epoch_003.safetensors"]
    done, _ = load_zfnet(resumed.checkpoints[-1])
    for name, value in net.state_dict().items():
        assert torch.equal(done.state_dict()[name], value), name
    with pytest.raises(ValueError, match="already trained 3 epochs"):
        ZFTrainJob(tmp_path / "data", tmp_path / "run3", options, resume=True)
    with pytest.raises(ValueError, match="checkpoint not found"):
        ZFTrainJob(tmp_path / "data", tmp_path / "run4", options, resume=True)


def test_training_refuses_bad_folders(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    write_shapes(tmp_path / "one", per_class=1, size=16)
    with pytest.raises(ValueError, match="at least two subfolders"):
        ZFTrainJob(tmp_path / "only", tmp_path / "out", ZFTrainOptions())
    with pytest.raises(ValueError, match="not found"):
        ZFTrainJob(tmp_path / "missing", tmp_path / "out", ZFTrainOptions())
    with pytest.raises(ValueError, match="size must be at least 47"):
        ZFTrainOptions(size=32)
