"""Super-resolution (Johnson et al. 2016, second half): networks, degradation, histogram matching, tiles,
training through the shared loop, model files, ONNX, and the train-sr / upscale commands."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylegram.cli.main import main
from stylegram.core import images
from stylegram.core.units import parse_size
from stylegram.feedforward.apply import ApplyJob, ApplyOptions
from stylegram.feedforward.export import OnnxStyleModel, export_onnx
from stylegram.feedforward.imaging import LevelCanvas, degrade, gaussian_kernel, match_histogram
from stylegram.feedforward.model import ModelInfo, load_model, save_model
from stylegram.feedforward.superres import SuperResOptions, train_superres
from stylegram.feedforward.tiles import boxes, largest_core, peak_bytes, run_tiled
from stylegram.nets.superres import SuperResNet, for_inference, padded_phases

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_looking(net: SuperResNet, seed: int = 0) -> SuperResNet:
    """Random weights everywhere (the last layer too) and random batch-norm statistics, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.02 if name.startswith("out") else 0.2))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return net.eval()


def _sr_info(net: SuperResNet) -> ModelInfo:
    arch = "johnson2016-sr" if net.upsample == "transposed" else "johnson2016-sr-nearest"
    return ModelInfo(width=net.width, architecture=arch, scale=net.scale, blocks=net.blocks, iterations=3)


# --------------------------------------------------------------------------------------------- the network


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
@pytest.mark.parametrize(("scale", "h", "w"), [(4, 7, 9), (4, 12, 12), (8, 5, 6), (2, 11, 5)])
def test_network_scales_any_size_and_starts_as_bicubic(upsample: str, scale: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    net = SuperResNet(scale, width=0.25, blocks=1, upsample=upsample).eval()  # type: ignore[arg-type]
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, scale * h, scale * w) and float(y.min()) >= 0 and float(y.max()) <= 1
    bicubic = F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(y, bicubic)  # the last layer starts at zero: an untrained network is bicubic
    assert [type(m).__name__ for m in net.up] == ["Upsample2"] * int(math.log2(scale))


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
@pytest.mark.parametrize(("scale", "h", "w"), [(4, 7, 9), (8, 5, 6), (2, 11, 5)])
def test_the_inference_copy_computes_the_same_function(upsample: str, scale: int, h: int, w: int) -> None:
    """Batch norms folded and stride-½ convolutions as pixel shuffles: the same output, and the input untouched."""
    net = _trained_looking(SuperResNet(scale, width=0.25, blocks=2, upsample=upsample), seed=scale + h)  # type: ignore[arg-type]
    fast = for_inference(net)
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(w))
    before = x.clone()
    with torch.no_grad():
        want, got = net(x), fast(x)
    inside = ((want > 0) & (want < 1)).float().mean()
    detail = want - F.interpolate(x, scale_factor=float(scale), mode="bicubic")
    assert float(inside) > 0.5 and float(detail.std()) > 0.01  # neither clamped nor bicubic: a real test
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert torch.equal(x, before) and fast.margin() == net.margin()
    assert not any(p.requires_grad for p in fast.parameters())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules()) == (upsample == "transposed")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("h", "w", "pad"), [(6, 7, 4), (3, 5, 2), (9, 4, 6)])
def test_padded_phases_equal_shuffle_pad_unshuffle(channels_last: bool, h: int, w: int, pad: int) -> None:
    y = torch.rand(2, 8, h, w, generator=torch.Generator().manual_seed(h * w))
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    want = F.pixel_unshuffle(F.pad(F.pixel_shuffle(y, 2), (pad,) * 4, mode="reflect"), 2)
    got = padded_phases(y, pad)
    assert torch.equal(got, want)  # a copy, no arithmetic: exactly equal, borders and corners included
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_paper_network_has_four_blocks_and_batch_norm() -> None:
    net = SuperResNet(4)
    assert len(net.residuals) == 4 and net.head.conv.kernel_size == (9, 9) and net.head.conv.out_channels == 64
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    with pytest.raises(ValueError, match="at least 5×5"):
        net(torch.rand(1, 3, 4, 9))
    with pytest.raises(ValueError, match="scale"):
        SuperResNet(3)


# --------------------------------------------------------------------------------------------- degradation


def _keys(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def test_degradation_is_a_gaussian_blur_then_bicubic_downsampling_by_hand() -> None:
    rng = np.random.default_rng(0)
    hr = rng.random((16, 20))
    # The blur: a 7-tap Gaussian of σ = 1, reflected at the borders, rows then columns.
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    k /= k.sum()
    np.testing.assert_allclose(gaussian_kernel(1.0).numpy(), k)
    padded = np.pad(hr, 3, mode="reflect")
    blurred = np.array([[np.sum(padded[i : i + 7, j : j + 7] * np.outer(k, k)) for j in range(20)]
                        for i in range(16)])
    # Bicubic ↓4: output pixel i samples the input at (i + ½)·4 − ½ with Keys' cubic, edges clamped.
    def down(n: int, s: int) -> np.ndarray:
        m = np.zeros((n // s, n))
        for i in range(n // s):
            centre = (i + 0.5) * s - 0.5
            base = math.floor(centre)
            for tap in range(base - 1, base + 3):
                m[i, min(max(tap, 0), n - 1)] += _keys(np.array(centre - tap))
        return m
    expected = np.clip(down(16, 4) @ blurred @ down(20, 4).T, 0, 1)
    got = degrade(torch.from_numpy(hr)[None, None].expand(1, 3, 16, 20).float(), 4, 1.0)
    assert got.shape == (1, 3, 4, 5)
    np.testing.assert_allclose(got[0, 1].numpy(), expected, atol=1e-5)


def test_histogram_matching_gives_the_reference_distribution_and_keeps_the_order() -> None:
    gen = torch.Generator().manual_seed(1)
    y = torch.rand(2, 3, 64, 48, generator=gen) ** 2
    ref = torch.rand(2, 3, 16, 12, generator=gen) * 0.5 + 0.3
    m = match_histogram(y, ref)
    quantiles = torch.linspace(0.05, 0.95, 10)
    for i in range(2):
        for c in range(3):
            got, want = m[i, c].flatten().quantile(quantiles), ref[i, c].flatten().quantile(quantiles)
            torch.testing.assert_close(got, want, atol=0.03, rtol=0)
    order = y[0, 0].flatten().argsort()
    assert bool((m[0, 0].flatten()[order].diff() >= -1e-7).all())  # monotonic: brighter stays brighter


# --------------------------------------------------------------------------------------------- tiles


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
def test_tiles_with_margins_equal_the_untiled_result(upsample: str) -> None:
    net = _trained_looking(SuperResNet(4, width=0.25, blocks=2, upsample=upsample))  # type: ignore[arg-type]
    x = torch.rand(1, 3, 37, 29, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = net(x)
        tiled = run_tiled(net, x, 4, core=10, margin=net.margin())
        short = run_tiled(net, x, 4, core=10, margin=2)
    assert float((whole - whole.mean()).abs().mean()) > 0.01  # the network does something
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
    assert float((short - whole).abs().max()) > 1e-3  # too small a margin shows: the test can fail
    assert len(boxes(37, 29, 10)) == 12


@pytest.mark.parametrize("matched", [False, True])
def test_an_8_bit_canvas_of_pieces_equals_the_whole_image_rounded(matched: bool) -> None:
    gen = torch.Generator().manual_seed(5)
    y = torch.rand(2, 3, 40, 36, generator=gen) * 1.2 - 0.1  # some values outside [0, 1], as a network gives
    ref = torch.rand(2, 3, 10, 9, generator=gen) * 0.6 + 0.2
    canvas = LevelCanvas(2, 40, 36, ref if matched else None)
    for top, left in [(0, 0), (0, 20), (24, 0), (24, 20)]:  # uneven pieces
        canvas.put(y[:, :, top : top + 24 if top == 0 else 40, left : left + 20 if left == 0 else 36], top, left)
    whole = match_histogram(y, ref) if matched else y
    want = images.levels(whole).permute(0, 2, 3, 1)
    got = canvas.finish()
    assert got.dtype == torch.uint8 and got.shape == (2, 40, 36, 3)
    assert torch.equal(got, want)
    assert canvas.index is None  # the bin indices are released once mapped


def test_stylize_levels_in_tiles_equals_the_untiled_float_path(tmp_path: Path) -> None:
    net = _trained_looking(SuperResNet(4, width=0.25, blocks=1))
    model = load_model(save_model(net, tmp_path / "sr.safetensors", _sr_info(net)))
    x = torch.rand(1, 3, 33, 27, generator=torch.Generator().manual_seed(6))
    for matched in (False, True):
        want = np.asarray(images.to_pil(model.stylize_tensor(x, match_histogram=matched)), int)
        whole = model.stylize_levels(x, match_histogram=matched).numpy().astype(int)
        tiled = model.stylize_levels(x, match_histogram=matched, tile=9)[0].numpy().astype(int)
        assert np.array_equal(whole[0], want)  # one tile: the same bytes as the float path
        assert np.abs(tiled - want).max() <= 1 and (tiled != want).mean() < 0.001  # float rounding at most
    pil = model.stylize(images.to_pil(x), tile=9)
    assert pil.size == (108, 132)


def test_memory_plan_and_sizes() -> None:
    assert parse_size("2GB") == 2_000_000_000 and parse_size("1.5GiB") == 3 * 2**29 and parse_size("512mb") == 512e6
    for bad in ("", "lots", "-1GB", "0"):
        with pytest.raises(ValueError, match="memory size"):
            parse_size(bad)
    core = largest_core(2 * 2**30, 4, 64, 14, fixed=0)
    assert core is not None and peak_bytes(core + 28, core + 28, 4, 64) <= 2 * 2**30
    assert peak_bytes(core + 8 + 28, core + 8 + 28, 4, 64) > 2 * 2**30  # and not much more would
    assert largest_core(10_000, 4, 64, 14, fixed=0) is None
    assert largest_core(2 * 2**30, 4, 64, 14, fixed=0, height=30, width=40) >= 40  # the whole image


# --------------------------------------------------------------------------------------------- training, files


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import skimage.data

    root = tmp_path_factory.mktemp("sr_photos")
    Image.fromarray(skimage.data.astronaut()[100:132, 180:212]).save(root / "a.png")  # one 32×32 photo
    return root


def test_a_few_iterations_lower_the_pixel_loss_and_write_a_loadable_model(photos: Path, tmp_path: Path) -> None:
    totals: list[float] = []
    o = SuperResOptions(data=str(photos), output=str(tmp_path / "sr.safetensors"), iterations=12, batch_size=2,
                        image_size=32, scale=4, blocks=1, width=0.25, workers=0, previews=1, loss="pixel",
                        checkpoint_every=6, lr=3e-4)
    result = train_superres(o, on_step=lambda e: totals.append(e.losses["total"]) and None, device="cpu")
    assert result.iterations == 12 and min(totals[6:]) < totals[0]
    model = load_model(o.output)
    assert (model.info.architecture, model.info.scale, model.info.blocks, model.scale) == ("johnson2016-sr", 4, 1, 4)
    assert model.info.extra["loss"] == "pixel" and model.info.task == "superres"
    for key, value in result.net.state_dict().items():  # batch-norm statistics included
        assert torch.equal(model.net.state_dict()[key].to(value.dtype), value), key
    with open(o.workdir / "log.csv") as fh:
        assert fh.readline().strip() == "iteration,pixel,tv,total,seconds"
    assert Image.open(o.workdir / "preview-0000012.png").size == (32, 64)  # the crop on top, its ×4 below
    big = model.stylize(Image.new("RGB", (9, 7), (120, 60, 30)))
    assert big.size == (36, 28)


def test_feature_loss_trains_through_the_loss_network(photos: Path, tmp_path: Path, random_vgg: object) -> None:
    o = SuperResOptions(data=str(photos), output=str(tmp_path / "f.safetensors"), iterations=2, batch_size=1,
                        image_size=16, blocks=1, width=0.25, workers=0, previews=0, scale=2)
    result = train_superres(o, vgg=random_vgg, device="cpu")  # type: ignore[arg-type]
    assert set(result.losses) == {"feature", "tv", "total"} and load_model(o.output).info.vgg_weights == "vgg16-caffe"


def test_bad_super_resolution_options_are_refused() -> None:
    for change, words in [({"scale": 3}, "scale must be one of"), ({"image_size": 30}, "multiple of the scale"),
                          ({"loss": "l1"}, "loss must be one of"), ({"feature_layer": "relu9_9"}, "relu9_9"),
                          ({"blur": float("nan")}, "finite")]:
        with pytest.raises(ValueError, match=words):
            SuperResOptions(**change)  # type: ignore[arg-type]


def test_onnx_export_of_a_super_resolution_model_matches_pytorch(tmp_path: Path) -> None:
    net = _trained_looking(SuperResNet(4, width=0.25, blocks=1))
    path = save_model(net, tmp_path / "sr.safetensors", _sr_info(net))
    model = load_model(path)
    report = export_onnx(model, tmp_path / "sr.onnx")
    assert report.max_abs_diff < 1e-4
    runtime = OnnxStyleModel.load(tmp_path / "sr.onnx")
    x = torch.rand(1, 3, 13, 10, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(runtime(x), model.stylize_tensor(x, match_histogram=False), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------------- commands


def test_upscale_writes_a_larger_image_in_tiles_equal_to_untiled(tmp_path: Path) -> None:
    net = _trained_looking(SuperResNet(4, width=0.25, blocks=1))
    path = save_model(net, tmp_path / "sr.safetensors", _sr_info(net))
    photo = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (30, 41, 3), dtype=np.uint8)).save(photo)
    assert main(["upscale", str(photo), "-o", str(tmp_path / "a.png"), "--model", str(path), "--quiet"]) == 0
    job = ApplyJob(path, [photo], tmp_path / "b.png", ApplyOptions(max_memory="4MB"), device="cpu")
    assert 0 < job.tile_core(30, 41) < 41  # the budget asks for tiles
    job.run()
    a, b = (np.asarray(Image.open(tmp_path / n), int) for n in ("a.png", "b.png"))
    assert a.shape == (120, 164, 3) and np.abs(a - b).max() <= 1
    meta = images.read_metadata(tmp_path / "a.png")
    assert meta is not None and meta["method"] == "johnson-superres" and meta["model_info"]["scale"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [(["upscale", "{photo}", "-o", "{tmp}/o.png", "--model", "{style}"], "needs a super-resolution model"),
     (["upscale", "{photo}", "-o", "{tmp}/o.png", "--model", "{sr}", "--max-memory", "lots"], "memory size"),
     (["upscale", "{photo}", "-o", "{tmp}/o.png", "--model", "{sr}", "--max-memory", "1KB"], "even in tiles"),
     (["apply", "{sr}", "{photo}", "-o", "{tmp}/o.png", "--original-colors"], "original-colors is for style"),
     (["train-sr", "--data", "{tmp}", "-o", "{tmp}/m.safetensors", "--scale", "3"], "scale must be one of"),
     (["train-sr", "--data", "{tmp}/none", "-o", "{tmp}/m.safetensors"], "training folder not found"),
     (["train-sr", "--data", "{tmp}", "-o", "{photo}/m.safetensors"], "not a folder")],
)
def test_bad_inputs_of_the_new_commands_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from stylegram.nets.transformer import TransformerNet

    sr = save_model(SuperResNet(4, 0.25, 1), tmp_path / "sr.safetensors", _sr_info(SuperResNet(4, 0.25, 1)))
    style = save_model(TransformerNet(0.25), tmp_path / "style.safetensors", ModelInfo(width=0.25))
    photo = tmp_path / "p.png"
    Image.new("RGB", (12, 10)).save(photo)
    before = sorted(p.name for p in tmp_path.iterdir())
    given = [a.format(tmp=tmp_path, photo=photo, sr=sr, style=style) for a in args]
    assert main([*given, "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
