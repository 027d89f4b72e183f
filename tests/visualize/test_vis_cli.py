"""``stylegram visualize …`` and ``stylegram zfnet …`` as a user meets them: outputs with their records, and
bad inputs as exit code 2 with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.cli.main import main
from stylegram.core import images
from stylegram.nets.zfnet import ZFNET, ZFNet, scaled
from stylegram.visualize.shapes import write_shapes
from stylegram.visualize.zfnet_files import save_zfnet


@pytest.fixture
def zfnet_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = ZFNet(scaled(ZFNET, 0.1), num_classes=4, hidden=(8, 8)).freeze()
    return save_zfnet(net, tmp_path / "z.safetensors", ("disc", "square", "stripes", "triangle"), 1, {})


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (72, 80, 3), dtype=np.uint8)).save(path)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_project_writes_the_figure_the_raw_array_and_the_record(
        tmp_path: Path, photo: Path, zfnet_file: Path, capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    out, raw = tmp_path / "p.png", tmp_path / "p.npy"
    code, err = _run(capsys, "visualize", "project", photo, "--zfnet", zfnet_file, "--layer", "relu3",
                     "--size", "0", "--rule", "guided", "-o", out, "--raw", raw, "--quiet")
    assert code == 0, err
    array = np.load(raw)
    assert array.shape == (3, 72, 80) and array.dtype == np.float32 and np.abs(array).max() > 0
    meta = images.read_metadata(out)
    assert meta is not None and meta["method"] == "visualize-project"
    assert meta["options"]["rule"] == "guided" and meta["network"]["network"] == "zfnet"
    assert meta["inputs"]["image"]["file"] == "photo.png"


def test_top_occlusion_and_evolution(tmp_path: Path, zfnet_file: Path, capsys: pytest.CaptureFixture[str],
                                     one_thread: None) -> None:
    write_shapes(tmp_path / "data", per_class=2, size=64)
    code, err = _run(capsys, "visualize", "top", tmp_path / "data", "--zfnet", zfnet_file, "--layers",
                     "relu2,relu5", "--channels", "0,3", "--k", "4", "-o", tmp_path / "top.png", "--quiet")
    assert code == 0, err
    meta = images.read_metadata(tmp_path / "top.png")
    assert meta is not None and meta["channels"] == {"relu2": [0, 3], "relu5": [0, 3]}
    assert len(meta["hits"]["relu5"][0]) == 4
    image = tmp_path / "data" / "disc" / "disc_0000.png"
    code, err = _run(capsys, "visualize", "occlusion", image, "--zfnet", zfnet_file, "--layer", "relu5",
                     "--window", "16", "--stride", "16", "--size", "0", "-o", tmp_path / "occ.png", "--quiet")
    assert code == 0, err
    meta = images.read_metadata(tmp_path / "occ.png")
    assert meta is not None and meta["target_name"] in ("disc", "square", "stripes", "triangle")
    code, err = _run(capsys, "visualize", "evolution", zfnet_file, zfnet_file, "--images", tmp_path / "data",
                     "--layer", "relu1", "--channels", "0,1", "-o", tmp_path / "evo.png", "--quiet")
    assert code == 0, err
    assert Image.open(tmp_path / "evo.png").width > 100


def test_zfnet_shapes_and_train(tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    code, _ = _run(capsys, "zfnet", "shapes", tmp_path / "data", "--per-class", "3", "--size", "48")
    assert code == 0
    code, err = _run(capsys, "zfnet", "train", "--data", tmp_path / "data", "-o", tmp_path / "run", "--epochs", "2",
                     "--batch-size", "6", "--size", "48", "--width", "0.1", "--hidden", "8", "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["epoch_001.safetensors", "epoch_002.safetensors",
                                                                   "train_state.ckpt"]
    train = ["zfnet", "train", "--data", tmp_path / "data", "-o", tmp_path / "run", "--batch-size", "6", "--size",
             "48", "--width", "0.1", "--hidden", "8"]
    code, err = _run(capsys, *train, "--epochs", "3", "--resume")
    assert code == 0 and "resuming after epoch 2" in err and (tmp_path / "run" / "epoch_003.safetensors").is_file()
    code, err = _run(capsys, *train, "--epochs", "3", "--resume", "--quiet")
    assert code == 2 and "already trained 3 epochs" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["visualize", "project", "{photo}", "--layer", "relu9"], "no layer 'relu9'"),
    (["visualize", "project", "{photo}", "--layer", "relu2", "--channel", "999"], "channel 999 is out of range"),
    (["visualize", "project", "{tmp}/missing.png", "--layer", "relu2"], "missing.png"),
    (["visualize", "project", "{photo}", "--layer", "relu2", "--raw", "{tmp}/x.txt"], ".npy"),
    (["visualize", "occlusion", "{photo}", "--layer", "relu5", "--size", "0", "--window", "100"],
     "larger than the 80×72 image"),
    (["visualize", "occlusion", "{photo}", "--layer", "relu5", "--target", "2", "--window", "8", "--model", "x"],
     "either a ZFNet file or VGG weights"),
    (["visualize", "top", "{tmp}/empty", "--layers", "relu2"], "holds no images"),
    (["visualize", "top", "{tmp}", "--layers", "relu2", "--channels", "500"], "channel 500 is out of range"),
    (["visualize", "project", "{photo}", "--layer", "relu2", "--rule", "nope"], "invalid choice"),
])
def test_bad_inputs_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path, photo: Path,
                                         zfnet_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    filled = [a.format(photo=photo, tmp=tmp_path) for a in args]
    try:
        code, err = _run(capsys, *filled, "--zfnet", zfnet_file, "-o", tmp_path / "out.png", "--quiet")
    except SystemExit as e:  # argparse refuses a bad choice itself, also with exit code 2
        code, err = int(str(e.code)), capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("stylegram")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_project_on_the_real_vgg16(tmp_path: Path, photo: Path, weights_cache: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "visualize", "project", photo, "--layer", "relu3_3", "--size", "0",
                     "-o", tmp_path / "p.png", "--raw", tmp_path / "p.npy", "--quiet")
    assert code == 0, err
    meta = images.read_metadata(tmp_path / "p.png")
    assert meta is not None and meta["network"]["weights"] == "vgg16-caffe" and meta["pooling"] == "max (switches)"
    assert np.load(tmp_path / "p.npy").shape == (3, 72, 80)
