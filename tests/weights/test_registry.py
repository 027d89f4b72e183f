"""The registry of base and derived sources: one-way imports, the normalised VGG16 verified like any source,
``weights verify`` telling missing from corrupt, and user mistakes as one-line WeightsErrors before any work."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch

import stylegram.weights
from stylegram.cli.main import main
from stylegram.core.errors import StylegramError
from stylegram.weights import NORMALIZED_SOURCE, SOURCES, WeightsError, list_sources, load_vgg, verify
from stylegram.weights.cache import cached_sha256
from stylegram.weights.normalize import FILENAME, calibration_images, ensure_normalized, load_normalized_vgg

# The order imports must follow inside the package: each module may import only those before it.
LAYERS = ["format", "cache", "sources", "normalize", "registry"]


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("a test tried to download")


@pytest.fixture(scope="module")
def built(weights_cache: str) -> Path:
    """The session cache holding vgg16-caffe and the normalised VGG16, built (once per session) for real."""
    ensure_normalized()
    return Path(weights_cache)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty private cache, no torch hub files, no network."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("STYLEGRAM_CACHE", str(folder))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    return folder


@pytest.fixture
def copied(built: Path, cache: Path) -> Path:
    """``cache`` holding copies of the converted vgg16-caffe and its normalised network."""
    cache.mkdir()
    for name in (SOURCES["vgg16-caffe"].filename, FILENAME):
        shutil.copyfile(built / name, cache / name)
    return cache


def _normalized_result() -> stylegram.weights.VerifyResult:
    return next(r for r in verify() if r.id == NORMALIZED_SOURCE)


# ------------------------------------------------------------------------------------------- imports


def _imported_layers(file: Path) -> set[str]:
    """The ``stylegram.weights`` modules ``file`` imports anywhere (also inside functions); "" for the package."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name == "stylegram.weights" or name.startswith("stylegram.weights."):
                found.add(name.removeprefix("stylegram.weights").lstrip(".").split(".")[0])
    return found


def test_weights_modules_import_one_way() -> None:
    folder = Path(stylegram.weights.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__") == sorted(LAYERS)
    for position, layer in enumerate(LAYERS):
        imported = _imported_layers(folder / f"{layer}.py")
        # Importing the package itself would run __init__ and so the registry: a cycle through the back door.
        assert "" not in imported, f"{layer} imports the stylegram.weights package"
        assert imported <= set(LAYERS[:position]), f"{layer} imports {sorted(imported - set(LAYERS[:position]))}"


@pytest.mark.parametrize("module", ["stylegram.weights.normalize", "stylegram.weights.sources"])
def test_each_side_of_the_old_cycle_imports_first(module: str) -> None:
    code = (f"import {module}\n"
            "from stylegram.weights import DERIVED_SOURCES, NORMALIZED_SOURCE, load_vgg\n"
            "from stylegram.weights.normalize import NORMALIZED, load_normalized_vgg\n"
            "assert DERIVED_SOURCES[NORMALIZED_SOURCE] is NORMALIZED and callable(load_vgg)\n"
            "print('imported')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


# ------------------------------------------------------------------------------ the derived source


def test_normalized_source_loads_through_load_vgg(copied: Path) -> None:
    model, info = load_vgg(NORMALIZED_SOURCE, pooling="max", device="cpu")
    direct, direct_info = load_normalized_vgg(pooling="max")
    assert info == direct_info and info.source == NORMALIZED_SOURCE and info.path == str(copied / FILENAME)
    assert (info.normalization, model.pooling, model.classifier) == ("caffe", "max", None)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, direct.state_dict()[name])


def test_normalized_source_is_verified(copied: Path) -> None:
    target = copied / FILENAME
    good = _normalized_result()
    assert (good.status, good.path) == ("ok", str(target)) and good.ok
    listed = next(s for s in list_sources() if s.id == NORMALIZED_SOURCE)
    assert listed.available and listed.where == str(target) and listed.sha256 == cached_sha256(target)

    data = bytearray(target.read_bytes())
    data[-1000] ^= 0xFF  # inside the last tensor: the header, and so the cheap check, stays valid
    target.write_bytes(bytes(data))
    bad = _normalized_result()
    assert bad.status == "corrupt" and not bad.ok and "rebuilt from vgg16-caffe" in bad.message

    target.write_bytes(b"not safetensors")
    assert _normalized_result().status == "corrupt"
    target.unlink()
    missing = _normalized_result()
    assert (missing.status, missing.path) == ("missing", None) and missing.ok and "first use" in missing.message


def test_normalized_file_from_other_settings_is_stale_not_corrupt(copied: Path) -> None:
    target = copied / FILENAME
    with safetensors.safe_open(str(target), "pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
        meta = json.loads((handle.metadata() or {})["stylegram"])
    safetensors.torch.save_file(state, target, metadata={"stylegram": json.dumps({**meta, "mean_floor": 0.5})})
    stale = _normalized_result()
    assert stale.status == "stale" and stale.ok and "recalibrated on next use" in stale.message
    assert "stale" in next(s for s in list_sources() if s.id == NORMALIZED_SOURCE).where


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_shows_missing_sources_as_missing_with_exit_0(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "verify"]) == 0
    lines = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert lines == {"vgg16-caffe": "ok", NORMALIZED_SOURCE: "missing", "vgg16": "missing", "vgg19": "missing"}


def test_cli_exits_1_only_for_a_corrupt_file(copied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = copied / FILENAME
    data = bytearray(target.read_bytes())
    data[-1000] ^= 0xFF
    target.write_bytes(bytes(data))
    assert main(["weights", "verify"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(NORMALIZED_SOURCE))
    assert row.split()[1] == "corrupt" and str(target) in row
    assert all(line.split()[1] != "ok" for line in out.splitlines() if line.split()[0] in ("vgg16", "vgg19"))


# ------------------------------------------------------------------------------------ user mistakes


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"device": "nonsense"}, "unknown device"),
        ({"pooling": "mean"}, "pooling must be"),
        ({"source": "vgg17", "path": "x.pth"}, "unknown weights source 'vgg17'"),
        ({"source": NORMALIZED_SOURCE, "classifier": True}, "has no classifier"),
    ],
)
def test_bad_arguments_fail_before_anything_is_read(cache: Path, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(StylegramError, match=fragment) as caught:
        load_vgg(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    assert not cache.exists()  # nothing converted, calibrated or written


def test_file_problems_are_one_line_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="is not a file"):
        load_vgg(path=tmp_path)
    with pytest.raises(WeightsError, match=r"gone\.pth: cannot read weights"):
        cached_sha256(tmp_path / "gone.pth")
    with pytest.raises(WeightsError, match="no image 'nonesuch'"):
        calibration_images(["nonesuch"])
