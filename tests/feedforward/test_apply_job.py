"""The apply use case as a library call (ApplyJob), the architecture registry, and the model record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stylegram.core import images
from stylegram.core.errors import OptionsError, StylegramError, UsageError
from stylegram.core.events import StepEvent
from stylegram.feedforward.apply import ApplyJob, ApplyOptions
from stylegram.feedforward.architectures import ARCHITECTURES, lookup
from stylegram.feedforward.model import ModelError, ModelInfo, load_model, save_model
from stylegram.nets.transformer import TransformerNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(5)
    return save_model(TransformerNet(0.25), tmp_path_factory.mktemp("m") / "m.safetensors",
                      ModelInfo(width=0.25, iterations=7))


def _png(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _clip(path: Path, frames: int) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 30 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_job_applies_a_folder_reports_events_and_records_the_model_checksum(model_file: Path, tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "in" / f"p{i}.png", (24, 20), seed=i)
    _png(tmp_path / "in" / "small.png", (6, 30))  # too small for the network: skipped up front, named
    events: list[StepEvent] = []
    job = ApplyJob(model_file, [tmp_path / "in"], tmp_path / "out", ApplyOptions(batch_size=2, precision="float32"),
                   device="cpu")
    assert [i.target.name for i in job.items] == ["p0.png", "p1.png", "p2.png"]
    assert len(job.skipped) == 1 and "small.png" in job.skipped[0][0] and "at least 8×8" in job.skipped[0][1]
    result = job.run(on_step=events.append)
    assert result.images == 3 and not result.stopped and result.skipped == job.skipped
    assert [(e.iteration, e.total, e.stage) for e in events] == [(2, 3, 0), (3, 3, 0)]  # one event per batch
    meta = images.read_metadata(tmp_path / "out" / "in" / "p1.png")
    assert meta is not None and meta["method"] == "johnson" and meta["input"] == "p1.png"
    assert meta["model"] == {"file": "m.safetensors", "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest()}
    assert meta["model_info"]["iterations"] == 7 and meta["precision"] == "float32" and meta["device"] == "cpu"
    assert meta["options"]["batch_size"] == 2
    expected = load_model(model_file).stylize(images.load_image(tmp_path / "in" / "p1.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "in" / "p1.png")), np.asarray(expected))


def test_a_callback_stops_the_job_and_only_complete_outputs_remain(model_file: Path, tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "in" / f"p{i}.png", (16, 16), seed=i)
    _clip(tmp_path / "in" / "clip.mp4", frames=6)
    job = ApplyJob(model_file, [tmp_path / "in"], tmp_path / "out", ApplyOptions(batch_size=1), device="cpu")
    assert job.items[-1].video  # images first, then videos
    result = job.run(on_step=lambda e: e.stage == 0 and e.iteration == 2)
    assert result.stopped and result.images == 2
    assert sorted(p.name for p in (tmp_path / "out" / "in").iterdir()) == ["p0.png", "p1.png"]
    # Stopped inside the video: no video, no temporary file.
    again = ApplyJob(model_file, [tmp_path / "in" / "clip.mp4"], tmp_path / "v.mp4", device="cpu")
    stopped = again.run(on_step=lambda e: e.iteration == 3)
    assert stopped.stopped and not stopped.videos
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    done = again.run()
    assert done.videos[0][1].frames == 6
    record = json.loads((tmp_path / "v.mp4.json").read_text())
    assert record["frames"] == 6 and record["model"]["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()


def test_options_are_checked_on_construction_with_one_line_messages() -> None:
    for bad, words in [({"size": 0}, "size must be at least 1"), ({"batch_size": 0}, "batch-size"),
                       ({"backend": "tvm"}, "backend must be one of"),
                       ({"backend": "onnxruntime", "precision": "bfloat16"}, "needs the torch backend")]:
        with pytest.raises(OptionsError, match=words) as err:
            ApplyOptions(**bad)  # type: ignore[arg-type]
        assert isinstance(err.value, StylegramError) and "\n" not in str(err.value)
    assert ApplyOptions.from_dict(ApplyOptions(size=64).to_dict()) == ApplyOptions(size=64)


def test_a_single_input_that_cannot_be_used_is_refused_before_any_work(model_file: Path, tmp_path: Path) -> None:
    tiny = _png(tmp_path / "tiny.png", (5, 5))
    with pytest.raises(UsageError, match="5×5 pixels"):
        ApplyJob(model_file, [tiny], tmp_path / "o.png", device="cpu")
    with pytest.raises(UsageError, match="none of the inputs"):  # a folder of nothing usable
        ApplyJob(model_file, [tmp_path], tmp_path / "out", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.png"]


def test_the_registry_builds_each_architecture_and_refuses_numbers_that_do_not_fit() -> None:
    arch = lookup("johnson2016")
    assert arch is not None and arch is ARCHITECTURES["johnson2016"] and arch.task == "style"
    assert isinstance(arch.build(0.5), TransformerNet) and lookup("unet") is None
    assert list(arch.problems(1.0, 1, 0)) == [] and list(arch.problems(1.0, 1, 5)) == []
    assert "scale" in "".join(arch.problems(1.0, 4, 0)) and "residual blocks" in "".join(arch.problems(1.0, 1, 3))
    with pytest.raises(ValueError, match="width"):
        arch.build(0.0)
    assert ModelInfo(width=0.5).task == "style"


def test_saving_refuses_a_network_that_is_not_the_one_the_record_describes(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"width 0\.5 needs"):
        save_model(TransformerNet(0.25), tmp_path / "m.safetensors", ModelInfo(width=0.5))
    with pytest.raises(ModelError, match="scale"):
        save_model(TransformerNet(0.25), tmp_path / "m.safetensors", ModelInfo(width=0.25, scale=4))
    assert not list(tmp_path.iterdir())
