"""The command line as a user meets it: exit codes, one-line messages, outputs and their metadata."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylegram.cli.main import main
from stylegram.core import images

FAST = ["--size", "32", "--iterations", "3", "--quiet", "--device", "cpu",
        "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]


@pytest.fixture
def pictures(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(style)
    return content, style


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stylegram", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_help_explains_every_option() -> None:
    r = _cli("stylize", "--help")
    assert r.returncode == 0
    for flag in ("--size", "--iterations", "--seed", "--optimizer", "--init", "--pooling", "--content-weight",
                 "--style-weight", "--tv-weight", "--content-layers", "--style-layers", "--style-blend-weights",
                 "--style-scale", "--original-colors", "--model", "--weights", "--save-every"):
        assert flag in r.stdout


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["missing.jpg", "{style}"], "missing.jpg"),
        ("dir", ["{bad}", "{style}"], "bad"),
        ("text", ["{bad}", "{style}"], "bad"),
        ("truncated", ["{content}", "{bad}"], "bad"),
        (None, ["{content}", "{style}", "--size", "0"], "size"),
        (None, ["{content}", "{style}", "--iterations", "-1"], "iterations"),
        (None, ["{content}", "{style}", "--style-layers", "relu9_1"], "relu9_1"),
        (None, ["{content}", "{style}", "--model", "nope"], "nope"),
        (None, ["{content}", "{style}", "--style-blend-weights", "1,2,3"], "blend"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, pictures: tuple[Path, Path], make: str | None, args: list[str], message: str
) -> None:
    content, style = pictures
    bad = tmp_path / "bad.png"
    if make == "dir":
        bad.mkdir()
    elif make == "text":
        bad.write_text("not an image at all")
    elif make == "truncated":
        bad = tmp_path / "bad.jpg"
        Image.new("RGB", (64, 64), "red").save(tmp_path / "full.jpg")
        bad.write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    argv = [a.format(content=content, style=style, bad=bad) for a in args]
    # Options after FAST, so that the bad value is the one argparse keeps.
    r = _cli("stylize", *argv[:2], "-o", str(tmp_path / "out.png"), *FAST, *argv[2:])
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_refuses_to_overwrite_an_input(pictures: tuple[Path, Path]) -> None:
    content, style = pictures
    before = content.read_bytes()
    assert main(["stylize", str(content), str(style), "-o", str(content), *FAST]) == 2
    assert content.read_bytes() == before


def test_stylize_writes_image_and_info_reads_back_the_options(
    weights_cache: str, tmp_path: Path, pictures: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    content, style = pictures
    out = tmp_path / "new" / "folder" / "out.png"
    code = main(["stylize", str(content), str(style), str(style), "-o", str(out), *FAST,
                 "--seed", "9", "--style-blend-weights", "1,3", "--save-every", "2"])
    assert code == 0
    with Image.open(out) as im:
        assert im.size == (32, 24)
    assert (tmp_path / "new" / "folder" / "out_0002.png").exists()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["options"]["seed"] == 9
    assert meta["options"]["style_blend_weights"] == [1.0, 3.0]
    assert meta["weights"]["id"] == "vgg16-caffe" and len(meta["weights"]["sha256"]) == 64
    assert meta["iterations"] == 3
    assert meta["inputs"]["content"]["file"] == "content.png"


def test_info_on_an_image_without_metadata(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    assert main(["info", str(plain)]) == 2


def test_classify_without_classifier_weights_says_what_is_missing(weights_cache: str, tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32), "blue").save(img)
    r = _cli("classify", str(img))  # torchvision's vgg16 is not on this offline machine
    assert r.returncode == 2
    assert "vgg16-397923af.pth" in r.stderr and "Traceback" not in r.stderr
    r = _cli("classify", str(img), "--model", "vgg16-caffe")
    assert r.returncode == 2 and "no classifier" in r.stderr


def test_weights_list_shows_the_offline_source(weights_cache: str) -> None:
    r = _cli("weights", "list")
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("vgg16-caffe"))
    assert "available" in line
    assert any(x.startswith("vgg19") and "missing" in x for x in r.stdout.splitlines())


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_ctrl_c_keeps_the_latest_image(weights_cache: str, tmp_path: Path, pictures: tuple[Path, Path]) -> None:
    content, style = pictures
    out = tmp_path / "out.png"
    args = [a for a in FAST if a != "--quiet"]
    args[args.index("--iterations") + 1] = "100000"
    proc = subprocess.Popen([sys.executable, "-m", "stylegram", "stylize", str(content), str(style),
                             "-o", str(out), *args], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 90
    seen = ""
    while "it/s" not in seen and time.monotonic() < deadline:  # wait until the progress bar runs
        seen += proc.stderr.read(64)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + rest
    assert "kept the latest image" in rest
    meta = images.read_metadata(out)
    assert meta is not None and meta["interrupted"] is True and meta["iterations"] >= 1


def test_checkpoint_and_resume_give_the_same_image(weights_cache: str, tmp_path: Path,
                                                     pictures: tuple[Path, Path]) -> None:
    content, style = pictures
    args = [a for a in FAST if a not in ("--iterations", "3")] + ["--iterations", "12", "--checkpoint-every", "5"]
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    assert main(["stylize", str(content), str(style), "-o", str(first), *args,
                 "--checkpoint", str(tmp_path / "a.ckpt")]) == 0
    assert (tmp_path / "a.ckpt").exists()
    # Resuming from the last checkpoint of the first run ends with the same pixels.
    assert main(["stylize", str(content), str(style), "-o", str(second), *args,
                 "--resume", str(tmp_path / "a.ckpt")]) == 0
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))
    # Other options: refused with a one-line message.
    assert main(["stylize", str(content), str(style), "-o", str(second), *args, "--seed", "3",
                 "--resume", str(tmp_path / "a.ckpt")]) == 2


def test_a_diverging_run_says_so_and_exits_1(weights_cache: str, tmp_path: Path, pictures: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """An absurd step size sends the pixels to ±1e30, VGG's responses overflow and the loss becomes inf or NaN:
    the run stops, keeps the best image before that, records the divergence and does not exit 0."""
    content, style = pictures
    out = tmp_path / "out.png"
    code = main(["stylize", str(content), str(style), "-o", str(out), *FAST, "--optimizer", "adam",
                 "--learning-rate", "1e30", "--iterations", "6"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "NaN or infinite" in err and "wrote" not in err
    meta = images.read_metadata(out)
    assert meta is not None and meta["diverged"] is True and meta["iterations"] < 6
