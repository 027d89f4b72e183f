"""``stylegram dn``: bad inputs are exit 2 with one line; a tiny learn, encode and filters run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from stylegram.cli.main import main


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    from skimage import data

    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("camera", "coins"):
        Image.fromarray(getattr(data, name)()).resize((40, 40)).save(d / f"{name}.png")
    return d


FAST = ["--size", "24", "--iterations", "1", "--beta-inc", "4", "--beta-max", "64", "--alternations", "1",
        "--maps", "3,4", "--filter-size", "3", "--quiet"]


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "m.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "folder not found" in _fails(capsys, ["dn", "learn", str(tmp_path / "nope"), "-o", out])
    assert "no images" in _fails(capsys, ["dn", "learn", str(empty), "-o", out])
    assert ".safetensors" in _fails(capsys, ["dn", "learn", str(folder), "-o", str(tmp_path / "m.pt")])
    assert "--maps" in _fails(capsys, ["dn", "learn", str(folder), "-o", out, "--maps", "9,45,3"])
    assert "lam" in _fails(capsys, ["dn", "learn", str(folder), "-o", out, "--lambda", "-1"])
    assert "beta" in _fails(capsys, ["dn", "learn", str(folder), "-o", out, "--beta0", "10", "--beta-max", "1"])
    assert "checkpoint not found" in _fails(capsys, ["dn", "learn", str(folder), "-o", out, "--resume",
                                                     str(tmp_path / "ck.pt")])
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    assert "not a readable" in _fails(capsys, ["dn", "filters", str(tmp_path / "junk.safetensors"), "-o",
                                               str(tmp_path / "f.png")])
    assert "not found" in _fails(capsys, ["dn", "encode", out, str(folder / "coins.png"), "-o", str(tmp_path)])


def test_learn_encode_filters_end_to_end(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.safetensors"
    assert main(["dn", "learn", str(folder), "-o", str(model), *FAST]) == 0
    assert main(["dn", "filters", str(model), "-o", str(tmp_path / "f.png")]) == 0
    assert Image.open(tmp_path / "f.png").size[0] > 100
    capsys.readouterr()
    enc = tmp_path / "enc"
    assert main(["dn", "encode", str(model), str(folder / "coins.png"), "-o", str(enc), "--size", "24",
                 "--json", "--alternations", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [layer["layer"] for layer in summary["layers"]] == [1, 2]
    assert all(0 <= layer["nonzero"] <= 1 and layer["total"] > 0 for layer in summary["layers"])
    for name in ("input.png", "reconstructions.png", "layer1_maps.png", "layer2_reconstruction.png",
                 "maps.safetensors", "summary.json"):
        assert (enc / name).is_file(), name
    # Another model's checkpoint options do not resume this run.
    ck = tmp_path / "ck.pt"
    assert main(["dn", "learn", str(folder), "-o", str(model), *FAST, "--iterations", "2", "--checkpoint",
                 str(ck)]) == 0
    capsys.readouterr()
    assert "other options" in _fails(capsys, ["dn", "learn", str(folder), "-o", str(model), *FAST,
                                              "--iterations", "2", "--seed", "4", "--resume", str(ck)])
