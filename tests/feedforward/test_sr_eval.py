"""Super-resolution evaluation: metrics against scikit-image, the folder layouts of the test sets, the held-out
split, the EvalJob use case and the eval-sr / sr-data commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stylegram.cli.main import main
from stylegram.core import images
from stylegram.core.errors import UsageError
from stylegram.feedforward import metrics, photos
from stylegram.feedforward.evalsets import find_set
from stylegram.feedforward.evaluate import EvalJob, EvalOptions, bicubic
from stylegram.feedforward.imaging import degrade
from stylegram.feedforward.model import ModelInfo, load_model, save_model
from stylegram.nets.superres import SuperResNet

pytestmark = pytest.mark.usefixtures("one_thread")


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth-ish random photo stand-in: noise over a gradient, (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 40, h)[:, None, None]
    return np.clip(ramp + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _sr_model(path: Path, seed: int = 0, scale: int = 4) -> Path:
    """A 1-block, quarter-width network with random weights everywhere (so it differs from bicubic)."""
    torch.manual_seed(seed)
    net = SuperResNet(scale, width=0.25, blocks=1)
    with torch.no_grad():
        for p in net.out.parameters():
            p.normal_(0, 0.01)
    return save_model(net, path, ModelInfo(width=0.25, architecture="johnson2016-sr", scale=scale, blocks=1))


# --------------------------------------------------------------------------------------------- metrics


def test_luma_is_bt601_studio_swing_as_skimage_computes_it() -> None:
    rgb = _rgb(9, 13, 0)
    y = metrics.luma(torch.from_numpy(rgb).permute(2, 0, 1)[None].double())
    np.testing.assert_allclose(y[0, 0].numpy(), rgb2ycbcr(rgb)[..., 0], atol=1e-10)
    ends = metrics.luma(torch.tensor([0.0, 255.0], dtype=torch.float64).view(2, 1, 1, 1).expand(2, 3, 1, 1))
    assert ends.flatten().tolist() == pytest.approx([16.0, 235.0])


def test_psnr_and_ssim_match_skimage_with_the_gaussian_window() -> None:
    a, b = _rgb(40, 52, 1), _rgb(40, 52, 2)
    ta, tb = (torch.from_numpy(x).permute(2, 0, 1)[None].double() for x in (a, b))
    ya, yb = metrics.luma(ta), metrics.luma(tb)
    na, nb = ya[0, 0].numpy(), yb[0, 0].numpy()
    assert float(metrics.psnr(ya, yb)) == pytest.approx(peak_signal_noise_ratio(na, nb, data_range=255), abs=1e-10)
    expected = structural_similarity(na, nb, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert float(metrics.ssim(ya, yb)) == pytest.approx(expected, abs=1e-10)
    assert float(metrics.ssim(ya, ya)) == pytest.approx(1.0) and metrics.psnr(ya, ya).isinf().all()
    rgb = peak_signal_noise_ratio(a.astype(float), b.astype(float), data_range=255)
    assert float(metrics.psnr(ta, tb)) == pytest.approx(rgb, abs=1e-10)


def test_scores_round_to_8_bits_and_crop_the_border_before_measuring() -> None:
    gen = torch.Generator().manual_seed(3)
    hr = torch.rand(1, 3, 30, 34, generator=gen)
    sr = (hr + 0.05 * torch.randn(1, 3, 30, 34, generator=gen)).clamp(0, 1)
    sr[..., :4, :] = 1 - sr[..., :4, :]  # damage only the border: the crop must hide it
    got = metrics.scores(sr, hr, border=4)
    a, b = (np.asarray(images.to_pil(x))[4:-4, 4:-4].astype(float) for x in (sr, hr))
    ya, yb = rgb2ycbcr(a / 255)[..., 0], rgb2ycbcr(b / 255)[..., 0]  # the 8-bit levels the files hold
    assert float(got["psnr_y"]) == pytest.approx(peak_signal_noise_ratio(yb, ya, data_range=255), abs=1e-6)
    ssim = structural_similarity(yb, ya, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert float(got["ssim_y"]) == pytest.approx(ssim, abs=1e-6)
    assert float(got["psnr_rgb"]) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-6)
    assert float(metrics.scores(sr, hr, border=0)["psnr_y"]) < float(got["psnr_y"]) - 3
    with pytest.raises(ValueError, match="nothing left"):
        metrics.scores(sr, hr, border=15)


# --------------------------------------------------------------------------------------------- layouts


def test_a_folder_of_hr_images_is_degraded_as_in_training(tmp_path: Path) -> None:
    _save(tmp_path / "set" / "a.png", _rgb(50, 63, 4))
    found = find_set(tmp_path / "set", 4)
    assert [i.name for i in found.images] == ["a"] and not found.given_lr and found.layout == "images"
    hr, lr = found.images[0].load(4, 1.0)
    assert hr.shape == (1, 3, 48, 60) and lr.shape == (1, 3, 12, 15)  # mod crop to a multiple of 4
    whole = images.to_tensor(Image.open(tmp_path / "set" / "a.png"))
    torch.testing.assert_close(hr, whole[:, :, :48, :60])
    torch.testing.assert_close(lr, torch.round(degrade(hr, 4, 1.0) * 255) / 255)


@pytest.mark.parametrize(("hr_dir", "lr_dir", "lr_name"), [
    ("HR", "LR_bicubic/X4", "babyx4.png"),  # EDSR / DAT benchmark folders
    ("GTmod12", "LRbicx4", "baby.png"),  # BasicSR's Set5 / Set14 downloads
    ("DIV2K_valid_HR", "DIV2K_valid_LR_bicubic/X4", "babyx4.png"),
])
def test_given_low_resolution_pairs_are_read_in_the_standard_layouts(tmp_path: Path, hr_dir: str, lr_dir: str,
                                                                     lr_name: str) -> None:
    root = tmp_path / "Set5"
    _save(root / hr_dir / "baby.png", _rgb(66, 81, 5))  # not a multiple of 4: cropped to 64 × 80
    _save(root / lr_dir / lr_name, _rgb(16, 20, 6))
    _save(root / "LR_bicubic" / "X2" / "babyx2.png", _rgb(33, 40, 7))  # another scale: ignored at ×4
    found = find_set(root, 4)
    assert found.given_lr and found.name == "Set5" and [i.name for i in found.images] == ["baby"]
    hr, lr = found.images[0].load(4, 1.0)
    assert hr.shape == (1, 3, 64, 80)
    torch.testing.assert_close(lr, images.to_tensor(Image.open(root / lr_dir / lr_name)))


@pytest.mark.parametrize(("files", "message"), [
    ({"HR/a.png": (40, 40), "LR_bicubic/X4/ax4.png": (11, 10)}, "not ×4 smaller"),
    ({"HR/a.png": (40, 40), "LR_bicubic/X4/bx4.png": (10, 10)}, "no low-resolution image for 'a.png'"),
    ({"tiny.png": (18, 18)}, "too small to score"),
    ({"notes.txt": None}, "no images in"),
])
def test_bad_evaluation_folders_are_refused_with_one_line(tmp_path: Path, files: dict[str, tuple[int, int] | None],
                                                          message: str) -> None:
    for name, size in files.items():
        if size is None:
            (tmp_path / name).write_text("not an image")
        else:
            _save(tmp_path / name, _rgb(size[1], size[0], 8))
    with pytest.raises(UsageError, match=message):
        find_set(tmp_path, 4)
    with pytest.raises(UsageError, match="not found"):
        find_set(tmp_path / "missing", 4)


# --------------------------------------------------------------------------------------------- the split


def test_the_split_is_fixed_disjoint_and_held_out_photos_are_never_in_the_training_folder(tmp_path: Path) -> None:
    train, held = {p.name for p in photos.TRAIN}, {p.name for p in photos.HELD_OUT}
    assert not train & held and {"coffee", "motorcycle_right"} <= held
    sources = " ".join(p.source for p in photos.TRAIN)
    assert "coffee" not in sources and "motorcycle" not in sources  # nor the other view of the motorcycle
    written = photos.write_split(tmp_path / "held", "held-out")
    assert [p.stem for p in written][:2] == ["coffee", "motorcycle_right"]
    loaded = dict(photos.load_split("held-out"))
    coffee = next(p for p in loaded if p.name == "coffee")
    assert np.array_equal(np.asarray(Image.open(written[0])), np.asarray(loaded[coffee]))
    before = written[0].stat().st_mtime_ns
    assert photos.write_split(tmp_path / "held", "held-out") == written  # the same pictures: left as they are
    assert written[0].stat().st_mtime_ns == before
    Image.new("RGB", (4, 4)).save(written[1])
    with pytest.raises(UsageError, match="different picture"):
        photos.write_split(tmp_path / "held", "held-out")
    assert Image.open(written[1]).size == (4, 4)  # nothing already there is replaced


def test_every_training_photo_loads_as_rgb() -> None:
    found = photos.load_split("train")
    assert len(found) == len(photos.TRAIN)
    assert all(img.mode == "RGB" and min(img.size) >= 256 for _, img in found)


# --------------------------------------------------------------------------------------------- the job


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scored")
    _save(root / "set" / "a.png", _rgb(48, 60, 9))
    _save(root / "set" / "b.png", _rgb(44, 52, 10))
    _sr_model(root / "m.safetensors")
    return root


def test_the_job_scores_bicubic_and_the_model_on_the_same_input(scored: Path, random_vgg: object) -> None:
    options = EvalOptions(match_histogram=False)
    job = EvalJob([scored / "m.safetensors"], scored / "set", options, device="cpu", vgg=random_vgg)  # type: ignore[arg-type]
    events: list[int] = []
    report = job.run(on_step=lambda e: events.append(e.iteration) and None)
    assert report.methods == ["bicubic", "m"] and report.images == ["a", "b"] and events == [1, 2]
    hr, lr = job.set.images[1].load(4, 1.0)
    model = load_model(scored / "m.safetensors")
    for method, sr in [("bicubic", bicubic(lr, 4)), ("m", model.stylize_tensor(lr, match_histogram=False))]:
        a, b = (np.asarray(images.to_pil(x))[4:-4, 4:-4] / 255 for x in (sr, hr))
        expected = peak_signal_noise_ratio(rgb2ycbcr(b)[..., 0], rgb2ycbcr(a)[..., 0], data_range=255)
        assert report.per_image[method][1].psnr_y == pytest.approx(expected, abs=1e-6)
    pil = Image.fromarray(np.asarray(images.to_pil(lr))).resize((52, 44), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(images.to_pil(bicubic(lr, 4))), np.asarray(pil))
    mean = report.mean["m"]
    assert mean.psnr_y == pytest.approx((report.per_image["m"][0].psnr_y + report.per_image["m"][1].psnr_y) / 2)
    assert mean.feature is not None and mean.feature > 0 and report.mean["bicubic"].feature != mean.feature
    plain = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert plain["per_image"]["m"][0]["psnr_y"] == pytest.approx(report.per_image["m"][0].psnr_y)
    assert plain["record"]["models"]["m"]["sha256"] and plain["degradation"].startswith("Gaussian blur")


def test_the_job_stops_when_asked_and_refuses_bad_combinations(scored: Path, tmp_path: Path) -> None:
    job = EvalJob(["bicubic"], scored / "set", EvalOptions(features=False), device="cpu")
    report = job.run(on_step=lambda e: True)
    assert report.stopped and report.images == ["a"] and report.scale == 4 and report.mean["bicubic"].feature is None
    x8 = _sr_model(tmp_path / "x8.safetensors", scale=8)
    with pytest.raises(UsageError, match="different scales"):
        EvalJob([scored / "m.safetensors", x8], scored / "set", EvalOptions(features=False))
    with pytest.raises(UsageError, match="does not match"):
        EvalJob([scored / "m.safetensors"], scored / "set", EvalOptions(scale=2, features=False))


# --------------------------------------------------------------------------------------------- commands


def test_eval_sr_prints_a_table_and_json(scored: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(scored / "m.safetensors")
    assert main(["eval-sr", model, model, "--data", str(scored / "set"), "--no-features", "--quiet"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("×4 on set (2 images: a, b)") and table[1].split()[:3] == ["method", "PSNR-Y", "SSIM-Y"]
    assert [row.split()[0] for row in table[2:]] == ["bicubic", "m", "m-2"] and "dB" in table[3]
    assert main(["eval-sr", "bicubic", "--data", str(scored / "set"), "--scale", "2", "--no-features", "--json",
                 "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scale"] == 2 and report["border"] == 2 and report["methods"] == ["bicubic"]


def test_sr_data_writes_a_folder_train_sr_can_use(tmp_path: Path) -> None:
    assert main(["sr-data", str(tmp_path / "held"), "--split", "held-out", "--quiet"]) == 0
    names = sorted(p.stem for p in (tmp_path / "held").iterdir())
    assert {"coffee", "motorcycle_right"} <= set(names)
    assert main(["eval-sr", "bicubic", "--data", str(tmp_path / "held"), "--no-features", "--quiet"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["eval-sr", "bicubic", "--data", "{tmp}/none"], "evaluation folder not found"),
    (["eval-sr", "{style}", "--data", "{set}"], "not a super-resolution one"),
    (["eval-sr", "{sr}", "--data", "{set}", "--scale", "8"], "does not match"),
    (["eval-sr", "nosuchmodel", "--data", "{set}"], "neither a file nor a shipped model"),
    (["eval-sr", "bicubic", "--data", "{set}", "--blur", "-1"], "--blur must be at least 0"),
    (["sr-data", "{sr}"], "it is a file"),
])
def test_bad_inputs_of_eval_sr_and_sr_data_exit_2_with_one_line(scored: Path, tmp_path: Path, args: list[str],
                                                                message: str, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    from stylegram.nets.transformer import TransformerNet

    style = save_model(TransformerNet(0.25), tmp_path / "style.safetensors", ModelInfo(width=0.25))
    given = [a.format(tmp=tmp_path, style=style, sr=scored / "m.safetensors", set=scored / "set") for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*given, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize(("warmup", "step"), [(0, 1e-3), (10, 1e-4)])
def test_warmup_scales_the_first_steps_of_adam(tmp_path: Path, warmup: int, step: float) -> None:
    """Adam's first step moves every weight with a gradient by about lr; the zero-initialised last layer shows it."""
    from stylegram.feedforward.superres import SuperResOptions, train_superres

    _save(tmp_path / "photos" / "a.png", _rgb(32, 32, 11))
    o = SuperResOptions(data=str(tmp_path / "photos"), output=str(tmp_path / "m.safetensors"), iterations=1,
                        batch_size=1, image_size=16, scale=2, blocks=1, width=0.25, workers=0, previews=0,
                        loss="pixel", lr=1e-3, warmup=warmup)
    net = train_superres(o, device="cpu").net
    moved = net.out[1].weight.detach().abs()  # type: ignore[index]
    assert float(moved.max()) == pytest.approx(step, rel=1e-3)
