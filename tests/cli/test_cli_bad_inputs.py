"""Every Gatys, figure and tool subcommand with its bad inputs: exit code 2, one line, no traceback, nothing written.

Each case runs in-process through ``main`` (the same code path as the ``stylegram`` command); the output folder is
checked to hold nothing new afterwards. Checks happen before any weights are loaded or any evaluation runs, so the
whole table takes seconds. The feed-forward commands have their own table in tests/feedforward.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylegram.cli.main import main

FAST = ["--size", "32", "--iterations", "2", "--quiet", "--device", "cpu"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    content, style = inputs / "content.png", inputs / "style.jpg"
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(style)
    text = inputs / "notes.txt"
    text.write_text("not an image")
    return {"content": content, "style": style, "text": text, "out": tmp_path / "out"}


# (arguments with {content}, {style}, {text}, {out} placeholders; a fragment of the message)
CASES = [
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--style-weight", "nan"], "finite"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--content-weight", "inf"], "finite"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--tv-weight", "-1"], "at least 0"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--style-layer-weights", "1,nan,1,1,1"], "finite"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--size", "8"], "at least 16"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--style-scale", "0"], "greater than 0"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--style-layers", "relu9_1"], "relu9_1"),
    (["stylize", "{content}", "{text}", "-o", "{out}/a.png"], "notes.txt"),
    (["stylize", "{content}", "{out}/missing.jpg", "-o", "{out}/a.png"], "missing.jpg"),
    (["stylize", "{content}", "{style}", "-o", "{content}/x.png"], "is a file, not a folder"),
    (["stylize", "{content}", "{style}", "-o", "/proc/stylegram-test/a.png"], "permission"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.gif"], "extension"),
    (["stylize", "{content}", "{style}", "-o", "{content}"], "input"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--device", "cuda:7"], "cuda"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--device", "nonsense"], "device"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--resume", "{text}"], "checkpoint"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--checkpoint", "{out}/c", "--checkpoint-every", "0"],
     "checkpoint-every"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--style-blend-weights", "1,2"], "blend"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--stage-iterations", "3,3"], "stage"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--init", "pallete"], "palette, content, noise, style"),
    (["stylize", "{content}", "{style}", "-o", "{out}/a.png", "--init", "{text}"], "notes.txt"),
    (["demo", "-o", "{out}/demo.png", "--iterations", "-5"], "at least 0"),
    (["grid", "{content}", "{style}", "-o", "{out}/g.png", "--ratios", "nan"], "ratio"),
    (["grid", "{content}", "{style}", "-o", "{out}/g.png", "--ratios", "1e-3,0"], "ratio"),
    (["grid", "{content}", "-o", "{out}/g.png"], "STYLE"),
    (["grid", "{content}", "{style}", "-o", "{out}/g.png", "--style-depths", "9"], "depth"),
    (["reconstruct", "content", "{content}", "-o", "{content}"], "folder"),
    (["reconstruct", "content", "{text}", "-o", "{out}/r"], "notes.txt"),
    (["reconstruct", "style", "{content}", "-o", "{out}/r", "--depths", "0"], "depth"),
    (["reconstruct", "content", "{content}", "-o", "{out}/r", "--layers", "relu9_9"], "relu9_9"),
    (["classify", "{content}", "--top", "-1"], "--top"),
    (["classify", "{text}"], "notes.txt"),
    (["info", "{content}"], "metadata"),
    (["info", "{out}/missing.png"], "missing.png"),
]


@pytest.mark.parametrize(("args", "fragment"), CASES, ids=[" ".join(a[:2]) + f" [{f}]" for a, f in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    args: list[str], fragment: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    if argv[0] in ("stylize", "demo", "grid", "reconstruct"):  # before the case's own flags, which then win
        at = 2 if argv[0] == "reconstruct" else 1
        argv = [*argv[:at], *FAST, *argv[at:]]
    before = set(files["out"].parent.rglob("*"))
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("stylegram: error: "), err
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err
    assert set(files["out"].parent.rglob("*")) == before  # nothing written, not even a folder
