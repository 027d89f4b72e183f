"""Every feed-forward command with its bad inputs: exit 2, one line on stderr, no traceback, nothing written.

Each case runs ``stylegram.cli.main.main`` in-process on a small scene (a tiny model, photos, a style image, a
short clip, a file where a folder should be) and compares the scene's files before and after.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.cli.main import main
from stylegram.feedforward.model import ModelInfo, save_model
from stylegram.nets.transformer import TransformerNet

pytestmark = pytest.mark.usefixtures("one_thread")


def _png(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _clip(path: Path, frames: int = 2, size: tuple[int, int] = (32, 24)) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, str]:
    torch.manual_seed(0)
    model = save_model(TransformerNet(0.25), tmp_path / "m.safetensors", ModelInfo(width=0.25))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        _png(photos / f"p{i}.png", (40, 32), seed=i)
    (tmp_path / "afile").write_text("a file where a folder is expected")
    return {
        "tmp": str(tmp_path), "model": str(model), "photos": str(photos), "photo": str(photos / "p0.png"),
        "style": str(_png(tmp_path / "style.png", (24, 24), seed=9)), "file": str(tmp_path / "afile"),
        "tiny": str(_png(tmp_path / "tiny.png", (5, 5))), "clip": str(_clip(tmp_path / "clip.mp4")),
    }


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with, for files, size and modification time (a folder's own time changes when
    a writability probe comes and goes, which writes nothing)."""
    return {os.fspath(p.relative_to(root)): (0, 0) if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


TRAIN = ["train", "--style", "{style}", "--data", "{photos}", "-o", "{tmp}/out/m.safetensors", "--iterations", "1",
         "--image-size", "16", "--batch-size", "1", "--workers", "0", "--device", "cpu"]
APPLY = ["apply", "{model}", "{photo}", "-o", "{tmp}/out/o.png", "--device", "cpu"]
EXPORT = ["export", "{model}", "--onnx", "{tmp}/out/m.onnx"]

CASES = [
    # train
    (TRAIN, {"--data": "{tmp}/none"}, "training folder not found"),
    (TRAIN, {"--data": "{file}"}, "must be a folder of photos"),
    (TRAIN, {"--style": "{tmp}/none.png"}, "style image not found"),
    (TRAIN, {"--iterations": "0"}, "--iterations must be at least 1"),
    (TRAIN, {"--width": "9"}, "--width must be at most 4"),
    (TRAIN, {"--lr": "nan"}, "--lr must be a finite number"),
    (TRAIN, {"--style-weight": "inf"}, "--style-weight must be a finite number"),
    (TRAIN, {"--content-weight": "-1"}, "--content-weight must be at least 0"),
    (TRAIN, {"--style-layers": "relu9_1"}, "no layer 'relu9_1'"),
    (TRAIN, {"-o": "{file}/m.safetensors"}, "is a file, not a folder"),
    (TRAIN, {"-o": "{file}/deeper/m.safetensors"}, "is a file, not a folder"),
    (TRAIN, {"-o": "{style}"}, "refusing to write"),
    (TRAIN, {"-o": "{photos}"}, "cannot write the model"),
    (TRAIN, {"--resume": None}, "no checkpoint"),
    (TRAIN, {"--device": "nonsense"}, "unknown device 'nonsense'"),
    (TRAIN, {"--device": "cuda"}, "no CUDA GPU"),
    # apply
    (APPLY, {"{model}": "{tmp}/none.safetensors"}, "model file not found"),
    (APPLY, {"{model}": "{photo}"}, "not a readable safetensors"),
    (APPLY, {"{photo}": "{tmp}/none.png"}, "input not found"),
    (APPLY, {"{photo}": "{tiny}"}, "is 5×5 pixels; the network needs at least 8×8"),
    (APPLY, {"--size": "8"}, "is 8×6 pixels after scaling to --size 8"),
    (APPLY, {"--size": "0"}, "--size must be at least 1"),
    (APPLY, {"--batch-size": "0"}, "--batch-size must be at least 1"),
    (APPLY, {"-o": "{photo}"}, "refusing"),
    (APPLY, {"-o": "{tmp}/out/o.xyz"}, "unsupported file extension"),
    (APPLY, {"-o": "{tmp}/out/o.mp4"}, "both be videos"),
    (APPLY, {"-o": "{file}/x/o.png"}, "is a file, not a folder"),
    (APPLY, {"{photo}": "{photos}", "-o": "{file}/x"}, "is a file, not a folder"),
    (APPLY, {"{photo}": "{photos}", "-o": "{file}"}, "OUT must be a folder"),
    (APPLY, {"{photo}": "{clip}", "-o": "{tmp}/out/o.webm"}, "cannot write video"),
    (APPLY, {"{photo}": "{clip}", "-o": "{tmp}/out/o.png"}, "both be videos"),
    (APPLY, {"{photo}": "{clip}", "-o": "{file}/o.mp4"}, "is a file, not a folder"),
    (APPLY, {"--size": "3", "{photo}": "{clip}", "-o": "{tmp}/out/o.mp4"}, "the network needs at least 8×8"),
    (APPLY, {"--device": "nonsense"}, "unknown device 'nonsense'"),
    (APPLY, {"--device": "cuda"}, "no CUDA GPU"),
    (APPLY, {"--backend": "onnxruntime", "--precision": "bfloat16"}, "needs the torch backend"),
    # export
    (EXPORT, {"--onnx": "{file}/x/m.onnx"}, "is a file, not a folder"),
    (EXPORT, {"--onnx": "{tmp}/out/m.txt"}, "must end in .onnx"),
    (EXPORT, {"--opset": "3"}, "--opset must be at least 11"),
    (EXPORT, {"--opset": "99"}, "--opset must be at most"),
    (EXPORT, {"{model}": "{tmp}/none.safetensors"}, "model file not found"),
]


def _args(base: list[str], change: dict[str, str | None]) -> list[str]:
    """``base`` with each flag's value (or a placeholder argument) replaced; a flag not in base is appended."""
    args = list(base)
    for key, value in change.items():
        if key in args and key.startswith("-"):
            i = args.index(key)
            args[i + 1 : i + 2] = [] if value is None else [value]
        elif key in args:
            args[args.index(key)] = value or ""
        else:
            args += [key] if value is None else [key, value]
    return args


@pytest.mark.parametrize(("base", "change", "message"), CASES,
                         ids=[f"{b[0]}:{' '.join(f'{k}={v}' for k, v in c.items())}" for b, c, _ in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        scene: dict[str, str], base: list[str], change: dict[str, str | None], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    if change.get("--device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = [a.format(**scene) for a in _args(base, change)]
    root = Path(scene["tmp"])
    before = _files(root)
    assert main([*args, "--quiet"] if base[0] != "export" else args) == 2
    out, err = capsys.readouterr()
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("stylegram: error: "), err
    assert "Traceback" not in err and out == ""
    assert _files(root) == before  # nothing written, not even a folder or a temporary file


def test_read_only_places_are_refused_before_any_work(scene: dict[str, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    locked = Path(scene["tmp"]) / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for base, change in [(TRAIN, {"-o": "{tmp}/locked/m.safetensors"}), (APPLY, {"-o": "{tmp}/locked/o.png"}),
                             (EXPORT, {"--onnx": "{tmp}/locked/m.onnx"})]:
            args = [a.format(**scene) for a in _args(base, change)]
            assert main(args) == 2
            err = capsys.readouterr().err
            assert "no permission" in err and len(err.strip().splitlines()) == 1
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)
