"""Image I/O: modes, EXIF orientation, bad files, bombs, resizing, tensors, atomic writes, metadata."""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.core import images
from stylegram.core.images import (
    MAX_PIXELS,
    ImageError,
    atomic_write_bytes,
    atomic_write_text,
    check_output,
    load_image,
    read_metadata,
    resize_longest,
    resize_to,
    save_image,
    to_pil,
    to_tensor,
)

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())  # type: ignore[no-untyped-call]


def pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for headers and depths that Pillow will not write (huge sizes, 16-bit RGB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def black_bilevel_png(path: Path, side: int) -> Path:
    """A real, valid all-black 1-bit PNG of side x side pixels: megapixels that compress to kilobytes."""
    row = b"\x00" + bytes((side + 7) // 8)  # filter byte, then packed bits
    path.write_bytes(png_bytes(side, side, 1, 0, row * side))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


# ------------------------------------------------------------------------------------------ loading


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 40 wide x 20 tall: red top-left block, green top-right block, blue elsewhere.
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(RED, (0, 0, 10, 10))
    stored.paste(GREEN, (30, 0, 40, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: display rotated 90° clockwise
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)

    img = load_image(path)
    assert img.size == (20, 40)
    # Turning clockwise moves the stored top row onto the right edge: top-left to top-right, top-right to
    # bottom-right.
    assert close_to(pixel(img, (17, 2)), RED)
    assert close_to(pixel(img, (17, 37)), GREEN)
    assert close_to(pixel(img, (2, 2)), BLUE)
    assert 0x0112 not in img.getexif()


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (30, 10), (0, 0, 0, 0))  # transparent black, as most editors store it
    rgba.paste((255, 0, 0, 255), (10, 0, 20, 10))
    rgba.paste((0, 0, 0, 128), (20, 0, 30, 10))
    rgba.save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.mode == "RGB"
    assert pixel(img, (5, 5)) == WHITE
    assert pixel(img, (15, 5)) == RED
    assert close_to(pixel(img, (25, 5)), (127, 127, 127), tol=1)


def test_la_is_composited_over_white(tmp_path: Path) -> None:
    la = Image.new("LA", (20, 10), (0, 0))
    la.paste((0, 255), (10, 0, 20, 10))
    la.save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    assert (pixel(img, (5, 5)), pixel(img, (15, 5))) == (WHITE, BLACK)


@pytest.mark.parametrize("transparent", [True, False])
def test_palette_with_and_without_transparency(tmp_path: Path, transparent: bool) -> None:
    pal = Image.new("P", (20, 10), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    pal.paste(1, (10, 0, 20, 10))
    extra: dict[str, Any] = {"transparency": 0} if transparent else {}
    pal.save(tmp_path / "p.png", **extra)
    img = load_image(tmp_path / "p.png")
    assert img.mode == "RGB"
    assert pixel(img, (5, 5)) == (WHITE if transparent else BLACK)
    assert pixel(img, (15, 5)) == RED


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    img = load_image(tmp_path / "cmyk.jpg")
    assert img.mode == "RGB"
    assert close_to(pixel(img, (8, 8)), RED)


def test_sixteen_bit_greyscale_png_spans_the_range(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    grey16 = Image.fromarray(ramp)
    assert grey16.mode == "I;16"
    grey16.save(tmp_path / "g16.png")
    levels = np.asarray(load_image(tmp_path / "g16.png"))
    assert (levels[..., 0] == levels[..., 1]).all() and (levels[..., 1] == levels[..., 2]).all()
    row = levels[0, :, 0].astype(int)
    assert row[0] <= 1 and row[-1] >= 254  # not clipped to white, not crushed to black
    assert (np.diff(row) >= 0).all()
    assert abs(row[128] - 128) <= 2


def test_sixteen_bit_rgb_png(tmp_path: Path) -> None:
    rows = (b"\x00" + np.array([[65535, 0, 32768]] * 3, dtype=">u2").tobytes()) * 2
    (tmp_path / "rgb16.png").write_bytes(png_bytes(3, 2, 16, 2, rows))
    img = load_image(tmp_path / "rgb16.png")
    assert img.size == (3, 2) and img.mode == "RGB"
    assert close_to(pixel(img, (1, 1)), (255, 0, 128), tol=1)


@pytest.mark.parametrize(
    ("values", "expected_ends"),
    [
        (np.linspace(0, 1, 64, dtype=np.float32), (0, 255)),  # [0, 1] floats
        (np.linspace(0, 200, 64, dtype=np.float32), (0, 200)),  # Pillow's own 0–255 float convention
        (np.linspace(-5, 5, 64, dtype=np.float32), (0, 255)),  # anything else is stretched
        (np.linspace(0, 65535, 64).astype(np.int32), (0, 255)),  # 16-bit data in a 32-bit "I" image
    ],
)
def test_float_and_int_tiffs_are_scaled(
    tmp_path: Path, values: np.ndarray[Any, Any], expected_ends: tuple[int, int]
) -> None:
    deep = Image.fromarray(np.tile(values, (3, 1)))
    assert deep.mode in ("F", "I")
    deep.save(tmp_path / "deep.tif")
    row = np.asarray(load_image(tmp_path / "deep.tif"))[1, :, 0].astype(int)
    assert (row[0], row[-1]) == expected_ends
    assert (np.diff(row) >= 0).all()


def test_bilevel_image(tmp_path: Path) -> None:
    bits = Image.new("1", (8, 4), 0)
    bits.paste(1, (4, 0, 8, 4))
    bits.save(tmp_path / "bits.png")
    img = load_image(tmp_path / "bits.png")
    assert (pixel(img, (1, 1)), pixel(img, (6, 1))) == (BLACK, WHITE)


def test_load_returns_a_new_image_for_rgb(tmp_path: Path, astronaut: Image.Image) -> None:
    astronaut.save(tmp_path / "a.png")
    img = load_image(str(tmp_path / "a.png"))
    assert img.mode == "RGB" and img.size == (512, 512)
    assert np.array_equal(np.asarray(img), np.asarray(astronaut))


# ---------------------------------------------------------------------------------------- bad input


def test_truncated_jpeg(tmp_path: Path, astronaut: Image.Image) -> None:
    whole = tmp_path / "whole.jpg"
    astronaut.save(whole)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"cannot read image '.*cut\.jpg': file is truncated or corrupt"):
        load_image(cut)


def test_text_file_named_png(tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture\n")
    with pytest.raises(ImageError, match=r"notes\.png': not an image"):
        load_image(fake)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"'.*nowhere\.jpg': no such file"):
        load_image(tmp_path / "nowhere.jpg")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageError, match=r"folder\.png': it is a directory"):
        load_image(tmp_path / "folder.png")
    with pytest.raises(ImageError, match=r"nowhere\.png': no such file"):
        read_metadata(tmp_path / "nowhere.png")


def test_image_error_is_a_one_line_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as caught:
        load_image(tmp_path / "nowhere.jpg")
    assert isinstance(caught.value, ImageError) and "\n" not in str(caught.value)


def test_decompression_bomb_over_our_limit_is_refused_from_the_header(tmp_path: Path) -> None:
    # 324 Mpx: above MAX_PIXELS but below the point where Pillow itself raises, so our own check decides.
    bomb = black_bilevel_png(tmp_path / "bomb.png", 18_000)
    assert bomb.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape either
        with pytest.raises(ImageError, match=r"bomb\.png': 18000x18000 is 324,000,000 pixels, more than"):
            load_image(bomb)
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS  # Pillow's own, put back


def test_decompression_bomb_that_pillow_refuses(tmp_path: Path) -> None:
    bomb = black_bilevel_png(tmp_path / "huge.png", 23_000)
    with pytest.raises(ImageError, match=r"huge\.png': 529,000,000 pixels is more than the limit"):
        load_image(bomb)


def test_the_largest_output_stylegram_writes_reads_back(tmp_path: Path) -> None:
    # A ×4 upscale of a 4000 × 3000 photo is 16000 × 12000 (192 Mpx): above Pillow's own refusal (~179 Mpx),
    # within ours. Read from its header (the metadata), as every command does before decoding.
    big = tmp_path / "upscaled.png"
    Image.new("1", (16_000, 12_000)).save(big, optimize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_metadata(big) is None
    assert MAX_PIXELS >= 16_000 * 12_000


def test_pixel_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    Image.new("RGB", (11, 10)).save(tmp_path / "big.png")
    assert load_image(tmp_path / "ok.png").size == (10, 10)
    with pytest.raises(ImageError, match="11x10 is 110 pixels"):
        load_image(tmp_path / "big.png")


# ------------------------------------------------------------------------------------------- resize


@pytest.mark.parametrize(
    ("size", "longest", "expected"),
    [
        ((300, 200), 100, (100, 67)),  # landscape
        ((200, 300), 100, (67, 100)),  # portrait
        ((400, 100), 250, (250, 63)),  # 62.5 rounds up
        ((1000, 3), 10, (10, 1)),  # never below one pixel
        ((10, 5), 40, (40, 20)),  # enlarging
        ((64, 64), 64, (64, 64)),
    ],
)
def test_resize_longest(size: tuple[int, int], longest: int, expected: tuple[int, int]) -> None:
    assert resize_longest(Image.new("RGB", size), longest).size == expected


def test_resize_filters_and_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    img = Image.new("RGB", (40, 20))
    assert resize_longest(img, 40) is not img
    used: list[int] = []
    original = Image.Image.resize

    def spy(self: Image.Image, size: tuple[int, int], resample: int | None = None, **kw: Any) -> Image.Image:
        used.append(int(resample) if resample is not None else -1)
        return original(self, size, resample, **kw)

    monkeypatch.setattr(Image.Image, "resize", spy)
    resize_longest(img, 20)
    resize_longest(img, 80)
    resize_to(img, (80, 10))  # any side shrinking means anti-aliasing matters
    assert used == [Image.Resampling.LANCZOS, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS]


def test_resize_to_and_bad_sizes() -> None:
    img = Image.new("RGB", (40, 20))
    assert resize_to(img, (7, 30)).size == (7, 30)
    for bad in (0, -3):
        with pytest.raises(ImageError, match="size must be a positive number of pixels"):
            resize_longest(img, bad)
        with pytest.raises(ImageError, match="size must be a positive number of pixels"):
            resize_to(img, (10, bad))


# ------------------------------------------------------------------------------------------ tensors


def test_tensor_round_trip_is_exact(astronaut: Image.Image) -> None:
    t = to_tensor(astronaut)
    assert t.shape == (1, 3, 512, 512) and t.dtype == torch.float32 and t.is_contiguous()
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    # Channel 0 is red: the astronaut's top-left pixel, read straight from the array.
    assert float(t[0, 0, 0, 0]) == pytest.approx(np.asarray(astronaut)[0, 0, 0] / 255)
    back = to_pil(t)
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), np.asarray(astronaut))
    assert np.array_equal(np.asarray(to_pil(t[0])), np.asarray(astronaut))


def test_to_tensor_converts_other_modes() -> None:
    rgba = Image.new("RGBA", (4, 2), (0, 0, 0, 0))
    assert torch.equal(to_tensor(rgba), torch.ones(1, 3, 2, 4))


def test_to_pil_leaves_its_input_alone() -> None:
    t = (torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(0)) * 2 - 0.5).requires_grad_()
    with torch.no_grad():
        t[0, :, 0, 0] = float("nan")  # so that even an in-place nan_to_num would show
    t_before = t.detach().clone()
    levels = np.asarray(to_pil(t))
    torch.testing.assert_close(t.detach(), t_before, rtol=0, atol=0, equal_nan=True)
    expected = (t_before[0].nan_to_num(0.0).clamp(0, 1) * 255).round().to(torch.uint8)
    assert np.array_equal(levels, expected.permute(1, 2, 0).numpy())
    assert {int(levels.min()), int(levels.max())} == {0, 255}  # clamped, not wrapped


def test_to_pil_nan_and_bad_inputs() -> None:
    t = torch.full((3, 2, 2), 0.5)
    t[:, 0, 0] = float("nan")
    levels = np.asarray(to_pil(t))
    assert tuple(levels[0, 0]) == (0, 0, 0) and tuple(levels[1, 1]) == (128, 128, 128)
    for shape in [(2, 3, 4, 4), (4, 4, 4), (4, 4)]:
        with pytest.raises(ImageError, match="expected a tensor of shape"):
            to_pil(torch.zeros(shape))
    with pytest.raises(ImageError, match="floating-point"):
        to_pil(torch.zeros(3, 4, 4, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------- saving


@pytest.mark.parametrize(
    "name", ["out.png", "out.jpg", "out.JPEG", "out.webp", "out.tif", "out.tiff", "out.bmp"]
)
def test_save_every_format(tmp_path: Path, astronaut: Image.Image, name: str) -> None:
    result = save_image(astronaut, tmp_path / name)
    assert result == tmp_path / name
    loaded = load_image(result)
    assert loaded.size == astronaut.size
    diff = np.abs(np.asarray(loaded, dtype=int) - np.asarray(astronaut, dtype=int)).mean()
    assert diff < 3
    assert leftovers(tmp_path) == []


def test_save_converts_modes_the_format_cannot_hold(tmp_path: Path) -> None:
    save_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), tmp_path / "clear.jpg")
    assert close_to(pixel(load_image(tmp_path / "clear.jpg"), (4, 4)), WHITE, tol=2)


def test_save_creates_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "out.png"
    assert save_image(Image.new("RGB", (4, 4), RED), target) == target
    assert pixel(load_image(target), (0, 0)) == RED


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"out\.gif'.*'\.gif'.*\.jpeg.*\.png.*\.webp"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "out.gif")
    with pytest.raises(ImageError, match="extension none"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    save_image(Image.new("RGB", (4, 4), RED), target)
    before = target.read_bytes()

    def broken_save(self: Image.Image, *args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match=r"cannot save image '.*out\.png': no space left on device"):
        save_image(Image.new("RGB", (4, 4), BLUE), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "out.png"
    save_image(Image.new("RGB", (4, 4), RED), target)
    before = target.read_bytes()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(ImageError, match="input/output error"):
        save_image(Image.new("RGB", (4, 4), BLUE), target)
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "other.bin", b"data")
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_interrupted_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "x.json", "{}")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_and_respects_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "notes.txt"
    assert atomic_write_text(target, "first\n") == target
    assert atomic_write_text(str(target), "second ✓\n") == target
    assert target.read_text(encoding="utf-8") == "second ✓\n"
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01") == tmp_path / "b.bin"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path) == [] and leftovers(target.parent) == []
    if os.name == "posix":  # a temp file made by mkstemp would have left this at 0600
        umask = os.umask(0)
        os.umask(umask)
        assert target.stat().st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------------------- metadata

META = {"seed": 7, "style": "starry night", "layers": ["relu1_1", "relu4_2"], "weights": {"tv": 1e-3}}


def test_png_metadata_round_trip(tmp_path: Path) -> None:
    target = save_image(Image.new("RGB", (4, 4)), tmp_path / "out.png", metadata=META)
    assert read_metadata(target) == META
    with Image.open(target) as raw:  # stored in the PNG itself, readable by any tool
        assert json.loads(raw.info["stylegram"]) == META
    assert not (tmp_path / "out.png.json").exists()


def test_jpeg_metadata_goes_to_a_sidecar(tmp_path: Path) -> None:
    target = save_image(Image.new("RGB", (4, 4)), tmp_path / "out.jpg", metadata=META)
    sidecar = tmp_path / "out.jpg.json"
    assert json.loads(sidecar.read_text(encoding="utf-8")) == META
    assert read_metadata(target) == META
    save_image(Image.new("RGB", (4, 4)), target)  # a new image without metadata: the old sidecar goes
    assert not sidecar.exists()
    assert read_metadata(target) is None
    assert leftovers(tmp_path) == []


def test_no_metadata_and_bad_metadata(tmp_path: Path) -> None:
    save_image(Image.new("RGB", (4, 4)), tmp_path / "plain.png")
    assert read_metadata(tmp_path / "plain.png") is None
    with pytest.raises(ImageError, match="not JSON-serialisable"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "bad.png", metadata={"t": torch.zeros(1)})
    assert not (tmp_path / "bad.png").exists()
    save_image(Image.new("RGB", (4, 4)), tmp_path / "x.webp")
    (tmp_path / "x.webp.json").write_text("[1, 2]")
    with pytest.raises(ImageError, match="not a JSON object"):
        read_metadata(tmp_path / "x.webp")


# ------------------------------------------------------------------------------------- check_output


def test_check_output_refuses_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    content = tmp_path / "content.png"
    save_image(Image.new("RGB", (4, 4)), content)
    monkeypatch.chdir(tmp_path)
    for spelling in ["content.png", "./sub/../content.png", str(content)]:
        with pytest.raises(ImageError, match="an input file is never overwritten"):
            check_output(spelling, ["style.jpg", "content.png"])
    # An input that does not exist yet is compared by where its path leads.
    with pytest.raises(ImageError, match="never overwritten"):
        check_output("sub/../later.png", [tmp_path / "later.png"])
    if hasattr(os, "symlink"):
        os.symlink(content, tmp_path / "link.png")
        with pytest.raises(ImageError, match="never overwritten"):
            check_output("link.png", ["content.png"])
    assert check_output("result.png", ["content.png"]) == Path("result.png")


def test_check_output_refuses_directories_and_unknown_extensions(tmp_path: Path) -> None:
    (tmp_path / "out.png").mkdir()
    with pytest.raises(ImageError, match=r"out\.png': it is a directory"):
        check_output(tmp_path / "out.png", [])
    with pytest.raises(ImageError, match=r"unsupported file extension '\.gif'"):
        check_output(tmp_path / "out.gif", [])
    with pytest.raises(ImageError, match="it is a directory"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "out.png")
