"""``stylegram upscale`` on a video (frames ``scale`` times larger, through the shared video I/O) and without
``--model`` (the shipped model, when the build has one)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.cli.main import main
from stylegram.core import images
from stylegram.feedforward import shipped
from stylegram.feedforward.model import ModelInfo, load_model, save_model
from stylegram.nets.superres import SuperResNet

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_model(path: Path, scale: int = 4) -> Path:
    torch.manual_seed(2)
    net = SuperResNet(scale, width=0.25, blocks=1)
    with torch.no_grad():
        for p in net.out.parameters():
            p.normal_(0, 0.02)  # not bicubic: the test sees the network's own work
    return save_model(net, path, ModelInfo(width=0.25, architecture="johnson2016-sr", scale=scale, blocks=1))


def _moving_clip(path: Path, frames: int, width: int = 24, height: int = 16) -> list[np.ndarray]:
    """A clip of a bright square sliding over a gradient (H.264 or MPEG-4 as the build has); the frames written."""
    written = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 4_000_000  # nearly lossless at this size: the comparison below is about the model
        for i in range(frames):
            rgb = np.zeros((height, width, 3), np.uint8)
            rgb[..., 0] = np.linspace(20, 200, width, dtype=np.uint8)[None, :]
            rgb[4:12, 2 * i : 2 * i + 8] = (230, 220, 90)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            written.append(rgb)
        for packet in stream.encode(None):
            out.mux(packet)
    return written


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.299, 0.587, 0.114])


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_upscaling_a_clip_writes_frames_scale_times_larger(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "sr.safetensors")
    clip = tmp_path / "clip.mp4"
    _moving_clip(clip, frames=6)
    source = _decoded(clip)
    out = tmp_path / "big.mp4"
    assert main(["upscale", str(clip), "-o", str(out), "--model", str(model), "--quiet", "--device", "cpu"]) == 0
    frames = _decoded(out)
    assert len(frames) == len(source) == 6 and frames[0].shape == (64, 96, 3)
    net = load_model(model)
    for got, frame in zip(frames, source, strict=True):
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
        want = _luma(np.asarray(images.to_pil(net.stylize_tensor(x))))
        plain = _luma(np.asarray(Image.fromarray(frame).resize((96, 64), Image.Resampling.BICUBIC)))
        # Compared on luma: the encoder's 4:2:0 chroma at 24×16 would hide the network in colour differences.
        # The model's frame, not a plain enlargement, is what the encoder received.
        error = np.abs(_luma(got) - want).mean()
        assert error < 2.0 and error < 0.6 * np.abs(_luma(got) - plain).mean()
    moved = np.abs(frames[-1].astype(float) - frames[0].astype(float)).mean()
    assert moved > 5.0  # the frames are the clip's own, in order, not one frame repeated
    sidecar = out.with_name(out.name + ".json").read_text()
    assert '"scale": 4' in sidecar and '"frames": 6' in sidecar


def test_upscale_without_a_model_uses_the_shipped_one_or_says_there_is_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(photo)
    monkeypatch.setattr(shipped, "MODELS", tmp_path / "models")  # a build that ships nothing
    assert main(["upscale", str(photo), "-o", str(tmp_path / "a.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ships no super-resolution model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.png").exists()
    _tiny_model(tmp_path / "models" / f"{shipped.DEFAULT_SUPERRES}.safetensors")  # a build that ships one
    assert main(["upscale", str(photo), "-o", str(tmp_path / "a.png"), "--quiet"]) == 0
    assert Image.open(tmp_path / "a.png").size == (48, 40)
    assert main(["upscale", str(photo), "-o", str(tmp_path / "b.png"), "--model", shipped.DEFAULT_SUPERRES,
                 "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


@pytest.mark.skipif(not shipped.shipped_models(), reason="this build ships no model")
def test_each_shipped_model_loads_with_its_training_record() -> None:
    for name, path in shipped.shipped_models().items():
        model = load_model(path)
        assert model.info.task == "superres" and model.info.iterations > 0, name
        assert path.stat().st_size <= 2_000_000 and model.info.extra["options"]["data"], name


@pytest.mark.slow
@pytest.mark.skipif(not shipped.shipped_models(), reason="this build ships no model")
@pytest.mark.parametrize("name", sorted(shipped.shipped_models()))
def test_each_shipped_model_beats_bicubic_by_its_own_measure_on_a_held_out_photo(tmp_path: Path, name: str) -> None:
    """The shipping rule: an l_pixel model beats bicubic (and an untrained network, PyTorch's sharper bicubic) on
    PSNR-Y and SSIM-Y; an l_feat model has a lower relu2_2 feature distance than both (its PSNR may be lower:
    the paper's finding)."""
    from stylegram.feedforward.evaluate import EvalJob, EvalOptions
    from stylegram.feedforward.photos import HELD_OUT

    coffee = HELD_OUT[0].load()
    assert coffee is not None
    (tmp_path / "photo").mkdir()
    coffee.save(tmp_path / "photo" / "coffee.png")
    untrained = tmp_path / "untrained.safetensors"
    info = load_model(shipped.shipped_models()[name]).info
    save_model(SuperResNet(info.scale, info.width, info.blocks), untrained,
               ModelInfo(width=info.width, architecture=info.architecture, scale=info.scale, blocks=info.blocks))
    loss = info.extra["loss"]
    job = EvalJob([shipped.shipped_models()[name], untrained], tmp_path / "photo",
                  EvalOptions(scale=info.scale, features=loss == "feature"), device="cpu")
    mean = job.run().mean
    for rival in ("bicubic", "untrained"):
        if loss == "pixel":
            assert mean[name].psnr_y > mean[rival].psnr_y + 0.1 and mean[name].ssim_y > mean[rival].ssim_y, rival
        else:
            ours, theirs = mean[name].feature, mean[rival].feature
            assert ours is not None and theirs is not None and ours < theirs, rival
