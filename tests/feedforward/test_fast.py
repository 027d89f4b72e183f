"""Trained-model files, applying models to images, folders and videos, and ONNX export."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.cli.main import main
from stylegram.core import images
from stylegram.core.device import native_bfloat16
from stylegram.core.video import VideoError, stylize_video
from stylegram.feedforward.export import OnnxStyleModel, export_onnx
from stylegram.feedforward.model import (
    FORMAT,
    METADATA_KEY,
    FastStyleModel,
    ModelError,
    ModelInfo,
    load_model,
    resolve_precision,
    save_model,
)
from stylegram.losses.color import keep_colors
from stylegram.nets.transformer import TransformerNet

pytestmark = pytest.mark.usefixtures("one_thread")


INFO = ModelInfo(width=0.5, style_image="wave.jpg", style_size=512, content_weight=1.0, style_weight=10.0,
                 tv_weight=1e-4, vgg_weights="vgg16-caffe", iterations=123, stylegram_version="test",
                 extra={"seed": 7})


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    torch.manual_seed(11)
    return TransformerNet(width=0.5)


@pytest.fixture(scope="module")
def model_file(net: TransformerNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(net, tmp_path_factory.mktemp("model") / "wave.safetensors", INFO)


def _photo(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------------------------- model files


def test_model_file_round_trip_keeps_tensors_and_metadata(net: TransformerNet, model_file: Path) -> None:
    model = load_model(model_file)
    assert model.info == INFO
    for key, value in net.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value), key
    from safetensors import safe_open

    with safe_open(str(model_file), "pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    assert meta["architecture"] == "johnson2016" and meta["format"] == FORMAT and meta["width"] == 0.5
    assert not list(model_file.parent.glob(".*.tmp"))


def test_model_stylises_pil_images_and_tensors_alike(net: TransformerNet, model_file: Path) -> None:
    model = load_model(model_file)
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 41, 3), dtype=np.uint8))
    out = model.stylize(photo)
    assert isinstance(out, Image.Image) and out.size == (41, 30) and out.mode == "RGB"
    x = images.to_tensor(photo)
    with torch.no_grad():
        expected = net.eval()(x)
    y = model.stylize(x)
    torch.testing.assert_close(y, expected)
    assert images.to_pil(y).tobytes() == out.tobytes()
    assert model.stylize(photo, size=20).size == (20, 15)
    assert model.stylize(x, size=20).shape == (1, 3, 15, 20)
    kept = model.stylize(x, original_colors=True)
    torch.testing.assert_close(kept, keep_colors(y, x))


def _rewrite(model_file: Path, dest: Path, *, meta: dict[str, object] | None = None,
             tensors: dict[str, torch.Tensor] | None = None, raw_meta: str | None = None) -> Path:
    from safetensors.torch import load_file, save_file

    state = load_file(str(model_file))
    info = json.loads(INFO.to_json())
    info.update(meta or {})
    state.update(tensors or {})
    save_file(state, str(dest), metadata={METADATA_KEY: raw_meta if raw_meta is not None else json.dumps(info)})
    return dest


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "truncated or corrupt"),
        ("text", "not a readable safetensors"),
        ("no-meta", "without stylegram metadata"),
        ("bad-json", "not valid JSON"),
        ("architecture", "architecture 'unet' is unknown"),
        ("width", "but width 1.0 needs"),
        ("width-type", "'width' should be float"),
        ("shape", r"has shape \(3, 3\)"),
        ("extra-tensor", "unexpected bogus"),
        ("nan", "NaN"),
        ("missing", "model file not found"),
    ],
)
def test_damaged_model_files_are_refused_with_one_line(model_file: Path, tmp_path: Path, damage: str,
                                                       message: str) -> None:
    bad = tmp_path / "bad.safetensors"
    key = "down.0.conv.conv.weight"
    if damage == "truncate":
        bad.write_bytes(model_file.read_bytes()[:-1000])
    elif damage == "text":
        bad.write_text("hello")
    elif damage == "no-meta":
        from safetensors.torch import save_file

        save_file({"a": torch.zeros(2)}, str(bad))
    elif damage == "bad-json":
        _rewrite(model_file, bad, raw_meta="{not json")
    elif damage == "architecture":
        _rewrite(model_file, bad, meta={"architecture": "unet"})
    elif damage == "width":
        _rewrite(model_file, bad, meta={"width": 1.0})
    elif damage == "width-type":
        _rewrite(model_file, bad, meta={"width": "half"})
    elif damage == "shape":
        _rewrite(model_file, bad, tensors={key: torch.zeros(3, 3)})
    elif damage == "extra-tensor":
        _rewrite(model_file, bad, tensors={"bogus": torch.zeros(1)})
    elif damage == "nan":
        state = load_model(model_file).net.state_dict()
        _rewrite(model_file, bad, tensors={key: torch.full_like(state[key], float("nan"))})
    with pytest.raises(ModelError, match=message) as err:
        load_model(bad)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_cli_reports_a_bad_model_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    photo = _photo(tmp_path / "p.png")
    assert main(["apply", str(bad), str(photo), "-o", str(tmp_path / "o.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylegram: error:") and "bad.safetensors" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------- apply


def test_apply_one_image_writes_it_with_metadata(model_file: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "photo.jpg", (45, 33))
    out = tmp_path / "out" / "styled.png"
    assert main(["apply", str(model_file), str(photo), "-o", str(out), "--quiet", "--device", "cpu"]) == 0
    result = Image.open(out)
    assert result.size == (45, 33)
    meta = images.read_metadata(out)
    assert meta is not None and meta["method"] == "johnson" and meta["model_info"]["iterations"] == 123
    auto = load_model(model_file, precision="auto")  # the CLI's default
    assert meta["precision"] == auto.precision == ("bfloat16" if native_bfloat16(torch.device("cpu")) else "float32")
    expected = auto.stylize(images.load_image(photo))
    assert np.array_equal(np.asarray(result), np.asarray(expected))
    small = tmp_path / "small.png"
    assert main(["apply", str(model_file), str(photo), "-o", str(small), "--quiet", "--size", "20",
                 "--original-colors"]) == 0
    assert Image.open(small).size == (20, 15)


def test_apply_folder_batches_keeps_layout_and_skips_unreadable(model_file: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        _photo(folder / f"p{i}.png", (32, 24) if i < 3 else (20, 28), seed=i)
    _photo(folder / "sub" / "q.jpg", (30, 30))
    (folder / "sub" / "broken.png").write_bytes(b"junk")
    extra = _photo(tmp_path / "extra.webp")
    out = tmp_path / "styled"
    assert main(["apply", str(model_file), str(folder), str(extra), "-o", str(out), "--batch-size", "2"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix != ".json" and p.is_file())
    assert written == ["extra.webp", "photos/p0.png", "photos/p1.png", "photos/p2.png", "photos/p3.png",
                       "photos/p4.png", "photos/sub/q.jpg"]
    assert Image.open(out / "photos" / "p3.png").size == (20, 28)
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.png" in err and "img" in err  # progress bar unit
    # Batched results equal one-at-a-time results: instance norm makes each image independent of its batch.
    single = load_model(model_file, precision="auto").stylize(images.load_image(folder / "p1.png"))
    assert np.array_equal(np.asarray(Image.open(out / "photos" / "p1.png")), np.asarray(single))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{model}", "{tmp}/none.png", "-o", "{tmp}/o.png"], "input not found"),
        (["{tmp}/none.safetensors", "{photo}", "-o", "{tmp}/o.png"], "model file not found"),
        (["{model}", "{photo}", "-o", "{photo}"], "refusing"),
        (["{model}", "{photo}", "-o", "{tmp}/o.xyz"], "o.xyz"),
        (["{model}", "{photo}", "-o", "{tmp}/o.mp4"], "both be videos"),
        (["{model}", "{photo}", "-o", "{tmp}/o.png", "--size", "0"], "--size"),
        (["{model}", "{photo}", "{photo}", "-o", "{photo}"], "must be a folder"),
        (["{model}", "{tmp}/bad.png", "-o", "{tmp}/o.png"], "bad.png"),
        (["{model}", "{tmp}", "-o", "{tmp}/.."], "refusing to overwrite"),
    ],
)
def test_apply_bad_input_is_one_line_and_exit_2(model_file: Path, tmp_path: Path, args: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(tmp_path / "photo.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    given = [a.format(model=model_file, tmp=tmp_path, photo=photo) for a in args]
    assert main(["apply", *given, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------- precision


def test_precision_is_checked_and_auto_follows_the_hardware(model_file: Path, net: TransformerNet,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == "float32" and resolve_precision("bfloat16", cpu) == "bfloat16"
    for native in (True, False):
        monkeypatch.setattr("stylegram.core.device.native_bfloat16", lambda device, native=native: native)
        assert resolve_precision("auto", cpu) == ("bfloat16" if native else "float32")
        assert FastStyleModel(net, INFO, precision="auto").precision == resolve_precision("auto", cpu)
    assert load_model(model_file).precision == "float32"  # the library's default: the paper's arithmetic
    for bad in ("half", "fp16", "BFLOAT16", "", None):
        with pytest.raises(ValueError, match="precision must be auto, float32 or bfloat16"):
            resolve_precision(bad, cpu)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="precision must be"):
            FastStyleModel(net, INFO, precision=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision must be"):  # checked before the file is read
        load_model("no/such/model.safetensors", precision="half")  # type: ignore[arg-type]


def test_bfloat16_output_is_float32_same_size_and_within_a_grey_level_or_two(net: TransformerNet) -> None:
    exact, low = FastStyleModel(net, INFO), FastStyleModel(net, INFO, precision="bfloat16")
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(3))  # odd sizes: padded and cropped back
    a, b = exact(x), low(x)
    assert b.dtype == torch.float32 and b.shape == x.shape and float(b.min()) >= 0 and float(b.max()) <= 1
    diff = (a - b).abs() * 255
    # Measured ~2.1 grey levels at most and ~0.36 on average for this random-weight net (0.30 mean, 9 max for a
    # trained model on a 512 px photo); the bound leaves room for other bfloat16 kernels.
    assert float(diff.max()) <= 6 and float(diff.mean()) <= 1
    assert float(diff.max()) > 0  # bfloat16 really ran
    assert low(x.double()).dtype == torch.float64  # the caller's dtype back, as with float32
    assert not net.out._forward_hooks  # the hook that keeps the last layer in float32 lives for one call only
    torch.testing.assert_close(exact(x), a, rtol=0, atol=0)
    assert low.stylize(images.to_pil(x[:1])).size == (53, 37)


def test_cli_precision_flag_is_recorded_and_bad_values_exit_2(model_file: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(tmp_path / "photo.png", (30, 22))
    for precision in ("float32", "bfloat16"):
        out = tmp_path / f"{precision}.png"
        assert main(["apply", str(model_file), str(photo), "-o", str(out), "--precision", precision, "--quiet"]) == 0
        meta = images.read_metadata(out)
        assert meta is not None and meta["precision"] == precision
        expected = load_model(model_file, precision=precision).stylize(images.load_image(photo))
        assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices: a usage line and exit 2
        main(["apply", str(model_file), str(photo), "-o", str(tmp_path / "x.png"), "--precision", "half"])
    assert exit_info.value.code == 2 and "--precision" in capsys.readouterr().err
    assert main(["apply", str(model_file), str(photo), "-o", str(tmp_path / "y.png"), "--backend", "onnxruntime",
                 "--precision", "bfloat16", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs the torch backend" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------- video


def make_clip(path: Path, frames: int = 8, size: tuple[int, int] = (64, 48), rate: int = 12,
              audio: bool = True) -> Path:
    """A tiny H.264 clip (a bar sweeping across) with an optional AAC sine tone."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = out.add_stream("aac", rate=8000) if audio else None
        if a is not None:
            a.layout = "mono"
        for i in range(frames):
            arr = np.zeros((size[1], size[0], 3), np.uint8)
            arr[:, : (i + 1) * size[0] // frames] = (200, 40 * (i % 6), 90)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            t = np.arange(8000 * frames // rate) / 8000
            tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                              format="fltp", layout="mono")
            tone.sample_rate, tone.pts = 8000, 0
            for p in [*a.encode(tone), *a.encode(None)]:
                out.mux(p)
    return path


def _probe(path: Path) -> tuple[int, Fraction, tuple[int, int], bool]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        count = sum(1 for _ in c.decode(video=0))
        return count, Fraction(v.average_rate or 0), (v.codec_context.width, v.codec_context.height), bool(
            c.streams.audio)


def test_video_keeps_frame_count_rate_size_and_audio(model_file: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out" / "styled.mp4"
    assert main(["apply", str(model_file), str(clip), "-o", str(out), "--quiet", "--batch-size", "3"]) == 0
    assert _probe(out) == (8, Fraction(12), (64, 48), True)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    source = make_clip(tmp_path / "again.mp4")
    with av.open(str(source)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    expected = load_model(model_file).stylize(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255)
    # Lossy encoding both ways: the frames agree to a few grey levels on average, not bit for bit.
    assert np.abs(first.astype(float) - expected[0].permute(1, 2, 0).numpy() * 255).mean() < 8


def test_video_without_audio_and_with_size(model_file: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "silent.mp4", frames=5, size=(48, 32), rate=10, audio=False)
    result = stylize_video(clip, tmp_path / "o.mkv", load_model(model_file), size=37)
    assert (result.frames, result.rate, result.size, result.audio) == (5, Fraction(10), (36, 24), False)
    assert _probe(tmp_path / "o.mkv")[:3] == (5, Fraction(10), (36, 24))


def test_unreadable_video_is_a_one_line_error(model_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(VideoError, match="cannot read video"):
        stylize_video(bad, tmp_path / "o.mp4", load_model(model_file))
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".*.tmp*"))


# --------------------------------------------------------------------------------------------- ONNX


def test_onnx_export_matches_pytorch_at_any_size(model_file: Path, tmp_path: Path) -> None:
    model = load_model(model_file)
    report = export_onnx(model, tmp_path / "m.onnx")
    assert report.max_abs_diff < 1e-4
    runtime = OnnxStyleModel.load(tmp_path / "m.onnx")
    assert runtime.info == model.info
    for shape in [(1, 3, 8, 8), (2, 3, 33, 47), (1, 3, 64, 100)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        y = runtime(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, model.stylize_tensor(x), rtol=0, atol=1e-4)


def test_cli_export_and_apply_with_onnxruntime(model_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    onnx_file = tmp_path / "wave.onnx"
    assert main(["export", str(model_file), "--onnx", str(onnx_file)]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().err
    photo = _photo(tmp_path / "p.png", (35, 29))
    for backend, model, out in [("torch", model_file, "a.png"), ("onnxruntime", onnx_file, "b.png"),
                                ("onnxruntime", model_file, "c.png")]:
        assert main(["apply", str(model), str(photo), "-o", str(tmp_path / out), "--backend", backend,
                     "--precision", "float32", "--quiet"]) == 0
    a, b, c = (np.asarray(Image.open(tmp_path / n), dtype=int) for n in ("a.png", "b.png", "c.png"))
    assert np.abs(a - b).max() <= 1 and np.abs(a - c).max() <= 1  # at most one grey level of rounding
    assert main(["export", str(model_file), "--onnx", str(tmp_path / "x.txt")]) == 2
    not_onnx = tmp_path / "n.onnx"
    not_onnx.write_bytes(b"garbage")
    assert main(["apply", str(not_onnx), str(photo), "-o", str(tmp_path / "d.png"), "--backend", "onnxruntime"]) == 2


def test_help_lists_the_fast_commands() -> None:
    r = subprocess.run([sys.executable, "-m", "stylegram", "train", "--help"], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0
    for flag in ("--iterations", "--batch-size", "--image-size", "--style-size", "--content-weight", "--style-weight",
                 "--tv-weight", "--lr", "--checkpoint-every", "--seed", "--width", "--resume", "--style", "--data",
                 "--output"):
        assert flag in r.stdout
