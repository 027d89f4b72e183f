"""Training the Johnson network: data folder, loss, repeatability, resume, checkpoints, distributed, CLI."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from stylegram.cli.main import main
from stylegram.core.events import StepEvent
from stylegram.feedforward.data import TrainDataError, TrainingImages
from stylegram.feedforward.loop import latest_checkpoint
from stylegram.feedforward.model import load_model
from stylegram.feedforward.train import LOG_COLUMNS, TrainError, TrainOptions, train
from stylegram.nets.vgg import VGG

TINY = {"iterations": 2, "batch_size": 1, "workers": 0, "image_size": 64, "style_size": 64, "width": 0.5,
        "checkpoint_every": 2, "previews": 2, "style_layers": ("relu1_2", "relu2_2"),
        "content_layers": ("relu2_2",)}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_photos(root: Path) -> Path:
    """A small folder of skimage photos with crops and flips, in subfolders and three formats, plus junk."""
    import skimage.data

    (root / "sub" / "deeper").mkdir(parents=True)
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        img = img.resize((img.width // 4, img.height // 4))
        img.save(root / f"{name}.jpg")
        flipped = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((0, 0, img.width * 2 // 3, img.height * 2 // 3))
        flipped.save(root / "sub" / f"{name}_flip.png")
        if i % 2:
            img.crop((5, 5, 90, 80)).save(root / "sub" / "deeper" / f"{name}_crop.webp")
    (root / "notes.txt").write_text("not a photo")  # ignored: not an image extension
    (root / "broken.jpg").write_bytes(b"this is not a JPEG")  # skipped while scanning
    data = (root / "astronaut.jpg").read_bytes()
    (root / "sub" / "truncated.jpg").write_bytes(data[: len(data) // 3])  # header fine, decoding fails
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def style_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("style") / "painting.png"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def options(photos: Path, style: Path, out: Path, **kw: object) -> TrainOptions:
    return TrainOptions(style=str(style), data=str(photos), output=str(out), **{**TINY, **kw})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- data


def test_folder_is_searched_recursively_and_unreadable_files_are_counted(photos: Path) -> None:
    data = TrainingImages(photos, 32)
    assert len(data.files) == 11  # 4 jpg + 4 png + 2 webp + the truncated jpg; broken.jpg and notes.txt dropped
    assert data.skipped == 1
    seen = {data.photo_of(0, k) for k in range(len(data.files))}
    assert seen == set(range(len(data.files)))  # one epoch visits every photo once
    crops = torch.cat([data.crop(0, k) for k in range(len(data.files))])
    assert crops.shape == (11, 3, 32, 32) and float(crops.min()) >= 0 and float(crops.max()) <= 1
    assert data.skipped == 2 and data.readable == 10  # the truncated file was found while decoding, not fatal


def test_sampling_is_repeatable_and_ranks_see_different_photos(photos: Path) -> None:
    data = TrainingImages(photos, 32)
    a = data.batch(seed=5, iteration=3, rank=0, world=2, batch=2)
    assert torch.equal(a, TrainingImages(photos, 32).batch(seed=5, iteration=3, rank=0, world=2, batch=2))
    ids0 = data.sample_ids(3, 0, 2, 2)
    ids1 = data.sample_ids(3, 1, 2, 2)
    assert not set(ids0) & set(ids1)
    assert not torch.equal(a, data.batch(seed=5, iteration=3, rank=1, world=2, batch=2))
    assert not torch.equal(a, data.batch(seed=6, iteration=3, rank=0, world=2, batch=2))


@pytest.mark.parametrize("what", ["missing", "file", "empty", "junk"])
def test_bad_training_folders_are_refused_with_a_message(tmp_path: Path, what: str) -> None:
    folder = tmp_path / "photos"
    if what == "file":
        folder.write_text("x")
    elif what != "missing":
        folder.mkdir()
        if what == "junk":
            (folder / "a.png").write_bytes(b"junk")
    with pytest.raises(TrainDataError, match="photos"):
        TrainingImages(folder, 32)


# --------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("change", "message"),
    [({"iterations": 0}, "iterations"), ({"image_size": 4}, "image-size"), ({"style_weight": -1.0}, "style-weight"),
     ({"lr": 0.0}, "lr"), ({"width": 0.0}, "width"), ({"style_layers": ("relu9_1",)}, "relu9_1")],
)
def test_bad_options_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(TrainError, match=message):
        TrainOptions(**change)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_lowers_the_loss_on_a_single_photo(tmp_path: Path, style_file: Path, real_vgg: VGG) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    totals: list[float] = []
    o = options(folder, style_file, tmp_path / "m.safetensors", iterations=20, lr=1e-3, checkpoint_every=100,
                style_weight=10.0, previews=0, tv_weight=0.0)
    train(o, on_step=lambda e: totals.append(e.losses["total"]) and None, vgg=real_vgg)
    assert len(totals) == 20
    assert totals[-1] < 0.2 * totals[0]


def test_run_writes_model_checkpoints_log_and_previews(tmp_path: Path, photos: Path, style_file: Path,
                                                       random_vgg: VGG) -> None:
    out = tmp_path / "model.safetensors"
    events: list[StepEvent] = []
    result = train(options(photos, style_file, out, iterations=5), on_step=events.append, vgg=random_vgg)
    assert [e.iteration for e in events] == [1, 2, 3, 4, 5] and result.iterations == 5
    assert set(events[0].losses) == {"content", "style", "tv", "total"}
    assert events[-1].image().shape == (1, 3, 128, 128)  # 2 validation photos on top, their stylisations below
    work = out.parent / "model.safetensors.train"
    assert sorted(p.name for p in work.glob("checkpoint-*.pt")) == ["checkpoint-0000004.pt", "checkpoint-0000005.pt"]
    assert {p.name for p in work.glob("preview-*.png")} == {f"preview-000000{i}.png" for i in (2, 4, 5)}
    assert Image.open(work / "preview-0000004.png").size == (128, 128)
    assert not list(out.parent.rglob(".*.tmp"))  # atomic writes leave no temporary files
    with open(work / "log.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == LOG_COLUMNS and [r[0] for r in rows[1:]] == ["1", "2", "3", "4", "5"]
    assert float(rows[-1][4]) == pytest.approx(events[-1].losses["total"], rel=1e-5)
    model = load_model(out)
    assert model.info.iterations == 5 and model.info.width == 0.5 and model.info.style_image == "painting.png"
    assert model.info.extra["skipped"] == result.skipped == 2
    torch.testing.assert_close(model.net.state_dict(), result.net.state_dict())


def test_training_is_repeatable_and_resume_equals_a_straight_run(tmp_path: Path, photos: Path, style_file: Path,
                                                                 random_vgg: VGG) -> None:
    straight = train(options(photos, style_file, tmp_path / "a.safetensors", iterations=4, previews=0),
                     vgg=random_vgg)
    again = train(options(photos, style_file, tmp_path / "b.safetensors", iterations=4, previews=0), vgg=random_vgg)
    half = options(photos, style_file, tmp_path / "c.safetensors", iterations=2, previews=0)
    train(half, vgg=random_vgg)
    resumed = train(half.replace(iterations=4, resume=True), vgg=random_vgg)
    assert resumed.iterations == 4
    for key, value in straight.net.state_dict().items():
        assert torch.equal(value, again.net.state_dict()[key]), key
        torch.testing.assert_close(resumed.net.state_dict()[key], value, rtol=0, atol=1e-6)
    with open(tmp_path / "c.safetensors.train" / "log.csv") as fh:
        assert [row.split(",")[0] for row in fh.read().splitlines()[1:]] == ["1", "2", "3", "4"]


def test_decoding_in_worker_processes_changes_nothing(tmp_path: Path, photos: Path, style_file: Path,
                                                      random_vgg: VGG) -> None:
    o = options(photos, style_file, tmp_path / "a.safetensors", iterations=3, batch_size=4, previews=0)
    inline = train(o, vgg=random_vgg)
    workers = train(o.replace(output=str(tmp_path / "b.safetensors"), workers=2), vgg=random_vgg)
    for key, value in inline.net.state_dict().items():
        assert torch.equal(workers.net.state_dict()[key], value), key
    # 12 samples of 11 photos reach the truncated one; its failure, found in a worker, is still counted.
    assert workers.skipped == inline.skipped == 2


def test_resume_refuses_changed_options_and_missing_checkpoints(tmp_path: Path, photos: Path, style_file: Path,
                                                                random_vgg: VGG) -> None:
    o = options(photos, style_file, tmp_path / "m.safetensors", iterations=2, previews=0)
    with pytest.raises(TrainError, match="no checkpoint"):
        train(o.replace(resume=True), vgg=random_vgg)
    train(o, vgg=random_vgg)
    with pytest.raises(TrainError, match="width"):
        train(o.replace(resume=True, iterations=4, width=1.0), vgg=random_vgg)
    with pytest.raises(TrainError, match="more --iterations"):
        train(o.replace(resume=True), vgg=random_vgg)
    ckpt = latest_checkpoint(o.workdir)
    assert ckpt is not None
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(TrainError, match="cannot read checkpoint"):
        train(o.replace(resume=True, iterations=4), vgg=random_vgg)


def test_a_callback_can_stop_the_run_and_it_leaves_a_checkpoint(tmp_path: Path, photos: Path, style_file: Path,
                                                               random_vgg: VGG) -> None:
    o = options(photos, style_file, tmp_path / "m.safetensors", iterations=50, checkpoint_every=20, previews=0)
    result = train(o, on_step=lambda e: e.iteration == 3, vgg=random_vgg)
    assert result.stopped and result.iterations == 3
    assert latest_checkpoint(o.workdir) == o.workdir / "checkpoint-0000003.pt"
    assert load_model(o.output).info.iterations == 3


# --------------------------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seeded_vgg() -> VGG:
    # Built in each process rather than pickled across: 58 MB of random weights cost more to send than to make.
    torch.manual_seed(99)
    return VGG("vgg16").freeze()


def _rank_main(rank: int, port: int, opts: TrainOptions, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        result = train(opts, vgg=_seeded_vgg())
        torch.save(result.net.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_processes_train_data_parallel_and_end_with_identical_weights(
        tmp_path: Path, photos: Path, style_file: Path) -> None:
    o = options(photos, style_file, tmp_path / "m.safetensors", iterations=3, previews=1)
    # fork, not spawn: the children inherit the imported torch instead of spending seconds importing it again.
    mp.start_processes(_rank_main, args=(_free_port(), o, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Only rank 0 wrote the model, and it holds those weights; data parallelism changed them from a 1-process run.
    torch.testing.assert_close(load_model(o.output).net.state_dict(), a)
    single = train(o.replace(output=str(tmp_path / "single.safetensors")), vgg=_seeded_vgg())
    assert not all(torch.equal(single.net.state_dict()[k], a[k]) for k in a)


# --------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "stylegram", *args], capture_output=True, text=True,
                          timeout=300, check=False, env=env)


@pytest.mark.slow
def test_cli_trains_with_the_real_vgg(weights_cache: str, tmp_path: Path, photos: Path, style_file: Path) -> None:
    out = tmp_path / "m.safetensors"
    r = _cli("train", "--style", str(style_file), "--data", str(photos), "-o", str(out), "--image-size", "64",
             "--style-size", "64", "--batch-size", "1", "--width", "0.5", "--checkpoint-every", "2",
             "--device", "cpu", "--iterations", "2", "--style-weight", "1e-5")
    assert r.returncode == 0, r.stderr
    assert "it/s" in r.stderr and "img/s" in r.stderr and "skipped 1 unreadable" in r.stderr
    info = load_model(out).info
    assert info.iterations == 2 and info.vgg_weights == "vgg16-caffe" and info.style_weight == 1e-5
    assert info.extra["options"]["image_size"] == 64
    assert (tmp_path / "m.safetensors.train" / "preview-0000002.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--data", "{tmp}/none"], "not found"), (["--style", "{tmp}/none.png"], "style image not found"),
     (["--iterations", "0"], "iterations"), (["--width", "9"], "width"), (["--resume"], "no checkpoint")],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, photos: Path, style_file: Path, args: list[str],
                                              message: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = {"--style": str(style_file), "--data": str(photos), "-o": str(tmp_path / "m.safetensors")}
    given = [a.replace("{tmp}", str(tmp_path)) for a in args]
    for flag, value in base.items():
        if flag not in given:
            given += [flag, value]
    assert main(["train", *given, "--quiet", "--image-size", "32", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_under_python_dash_m_reports_usage_errors_with_exit_2(tmp_path: Path, photos: Path) -> None:
    r = _cli("train", "--style", str(tmp_path / "none.png"), "--data", str(photos), "-o", str(tmp_path / "m.st"))
    assert r.returncode == 2 and r.stderr.startswith("stylegram: error: style image not found")
