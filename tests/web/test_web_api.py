"""The API on real jobs: submit, follow the event stream (and resume it), preview, result with its record, cancel
(running and queued), the bounded queue, retention, shutdown."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image
from web_helpers import events, finished, png, submit, upload, wait_for

from stylegram.core.images import read_metadata
from stylegram.core.options import describe
from stylegram.gatys.options import GatysOptions


def test_info_offers_exactly_the_web_fields_of_the_options_dataclass(make_client: Any) -> None:
    client = make_client(max_size=300, max_iterations=77)
    info = client.get("/api/info").json()
    gatys = next(k for k in info["kinds"] if k["name"] == "gatys")
    names = [f["name"] for f in gatys["options"]]
    # Derived, not listed: a field added to GatysOptions (a preset, a strength) appears here by itself.
    assert names == [f.name for f in describe(GatysOptions) if f.web]
    assert "weights" not in names and "content_masks" not in names
    fields = {f["name"]: f for f in gatys["options"]}
    assert fields["size"]["max"] == 300 and fields["iterations"]["max"] == 77
    assert fields["init"]["choices"] == ["palette", "content", "noise", "style"]  # never a path on the server
    assert info["limits"]["max_size"] == 300 and info["devices"] == ["cpu"] and "vgg16-caffe" in info["models"]
    assert client.get("/api/health").json() == {"status": "ok", "active": 0}
    assert "/api/jobs" in client.get("/openapi.json").json()["paths"]


def test_a_job_streams_numbered_events_and_ends_with_a_result_that_carries_the_record(client: Any) -> None:
    content, style = png(0), png(1)
    accepted = submit(client, {"seed": "3"}, files=upload(content, [style], ("my photo.png", "night.png")))
    assert accepted["state"] in ("queued", "running") and accepted["position"] in (0, 1)
    stream = events(client, accepted["id"])
    ids = [i for i, _, _ in stream]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    progress = [d for _, kind, d in stream if kind == "progress"]
    assert progress[-1]["iteration"] == progress[-1]["total"] == 4 and progress[-1]["preview"] >= 1
    assert set(progress[-1]["losses"]) >= {"content", "style", "total"}
    assert stream[-1][1] == "state" and stream[-1][2]["state"] == "done"

    view = client.get(f"/api/jobs/{accepted['id']}").json()
    assert view["state"] == "done" and view["iteration"] == 4 and view["result"].endswith("/result.png")
    assert view["content"] == "my photo.png" and view["styles"] == ["night.png"]
    preview = client.get(f"/api/jobs/{accepted['id']}/preview.jpg")
    assert preview.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(preview.content)).size == (32, 27)
    result = client.get(view["result"])
    assert result.headers["content-type"] == "image/png"
    assert result.headers["content-disposition"].startswith("attachment; filename=\"stylegram-")
    saved = Path(client.app.state.folder) / "downloaded.png"
    saved.write_bytes(result.content)
    record = read_metadata(saved)
    assert record is not None and record["method"] == "gatys" and record["options"]["seed"] == 3
    assert record["inputs"]["content"] == {"file": "my photo.png", "sha256": hashlib.sha256(content).hexdigest()}
    assert record["inputs"]["styles"] == [{"file": "night.png", "sha256": hashlib.sha256(style).hexdigest()}]
    assert record["weights"]["id"] == "vgg16-caffe" and record["iterations"] == 4


def test_the_stream_resumes_after_the_last_event_id(client: Any) -> None:
    job = submit(client)
    everything = events(client, job["id"])
    middle = everything[len(everything) // 2][0]
    resumed = events(client, job["id"], last=middle)
    assert [e[0] for e in resumed] == [e[0] for e in everything if e[0] > middle]
    assert events(client, job["id"], last=everything[-1][0]) == []  # nothing new, and the stream ends


def test_progress_events_come_at_most_a_few_times_a_second(client: Any) -> None:
    job = submit(client, {"iterations": "30"})
    stream = events(client, job["id"])
    view = client.get(f"/api/jobs/{job['id']}").json()
    progress = [d for _, kind, d in stream if kind == "progress"]
    assert view["iteration"] == 30 and progress[-1]["iteration"] == 30
    assert len(progress) <= 5 * view["elapsed"] + 2 < 30


def test_cancel_stops_a_running_job_within_two_evaluations_and_keeps_its_image(client: Any) -> None:
    job = submit(client, {"iterations": "1000"})
    wait_for(client, job["id"], lambda v: v["iteration"] >= 2)
    r = client.delete(f"/api/jobs/{job['id']}")
    assert r.status_code == 202 and r.json()["cancelling"] is True
    at_cancel = r.json()["iteration"]
    view = wait_for(client, job["id"], finished, timeout=30)
    assert view["state"] == "cancelled" and view["iteration"] <= at_cancel + 2
    assert client.get(view["result"]).status_code == 200  # the image so far is kept
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 409
    assert client.delete("/api/jobs/nosuchjob").status_code == 404
    assert client.get("/api/jobs/nosuchjob/events").status_code == 404


def test_a_queued_job_has_a_position_and_cancelling_it_drops_it(make_client: Any) -> None:
    client = make_client(queue=3)
    first = submit(client, {"iterations": "1000"})
    second, third = submit(client), submit(client)
    wait_for(client, first["id"], lambda v: v["state"] == "running")
    assert client.get(f"/api/jobs/{second['id']}").json()["position"] == 1
    assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 2
    dropped = client.delete(f"/api/jobs/{second['id']}")
    assert dropped.status_code == 202 and dropped.json()["state"] == "cancelled" and dropped.json()["result"] is None
    assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 1  # moved up
    client.delete(f"/api/jobs/{first['id']}")
    assert wait_for(client, third["id"], finished)["state"] == "done"
    states = {v["id"]: v["state"] for v in client.get("/api/jobs").json()}
    assert states == {first["id"]: "cancelled", second["id"]: "cancelled", third["id"]: "done"}
    assert list((Path(client.app.state.folder) / "uploads").iterdir()) == []  # a dropped job's inputs go too


def test_a_full_queue_answers_429_with_retry_after_and_stores_nothing(make_client: Any) -> None:
    client = make_client(queue=2)
    held = [submit(client, {"iterations": "1000"}) for _ in range(2)]
    uploads = Path(client.app.state.folder) / "uploads"
    before = sorted(uploads.iterdir())
    r = client.post("/api/jobs", files=upload(), data=dict(iterations="4", size="32"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "try again" in r.json()["detail"]
    assert sorted(uploads.iterdir()) == before
    for job in held:
        client.delete(f"/api/jobs/{job['id']}")


def test_a_job_the_library_refuses_fails_with_its_one_line_message(client: Any) -> None:
    job = submit(client, {"content_layers": "relu9_9"})
    view = wait_for(client, job["id"], finished)
    assert view["state"] == "failed" and "relu9_9" in view["error"] and "\n" not in view["error"]
    assert view["result"] is None and client.get(f"/api/jobs/{job['id']}/result.png").status_code == 404


def test_finished_jobs_beyond_the_kept_number_are_removed_with_their_files(make_client: Any) -> None:
    client = make_client(keep_results=1)
    first = submit(client)
    wait_for(client, first["id"], finished)
    second = submit(client)
    wait_for(client, second["id"], finished)
    assert client.get(f"/api/jobs/{first['id']}").status_code == 404
    folder = Path(client.app.state.folder)
    assert [p.name for p in (folder / "results").iterdir()] == [f"{second['id']}.png"]
    assert list((folder / "uploads").iterdir()) == []  # inputs go once their job has run


def test_stopping_the_server_stops_a_running_job_and_removes_its_own_folder(make_client: Any) -> None:
    from fastapi.testclient import TestClient

    from stylegram.web.app import create_app
    from stylegram.web.config import ServerOptions

    client = TestClient(create_app(ServerOptions(devices=("cpu",))), base_url="http://127.0.0.1:8000")
    with client:
        folder = Path(client.app.state.folder)
        job = submit(client, {"iterations": "1000"})
        wait_for(client, job["id"], lambda v: v["iteration"] >= 1)
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 10
    assert client.app.state.runner.threads_alive() == 0
    assert not folder.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("stylegram-worker")]


def test_a_feed_forward_model_in_the_models_folder_is_a_kind_run_by_apply_job(make_client: Any,
                                                                              tmp_path: Path) -> None:
    import torch

    from stylegram.feedforward.model import ModelInfo, save_model
    from stylegram.nets.transformer import TransformerNet

    torch.manual_seed(5)
    models = tmp_path / "models"
    save_model(TransformerNet(0.25), models / "mosaic.safetensors", ModelInfo(width=0.25, style_image="mosaic.jpg"))
    client = make_client(models_dir=str(models), max_size=40)
    kinds = {k["name"]: k for k in client.get("/api/info").json()["kinds"]}
    assert set(kinds) == {"gatys", "mosaic"} and kinds["mosaic"]["max_styles"] == 0
    assert "mosaic.jpg" in kinds["mosaic"]["description"]
    refused = client.post("/api/jobs", files=upload(png(0), []), data={"kind": "mosaic", "backend": "onnxruntime"})
    assert refused.status_code == 422 and "backend must be one of torch" in refused.json()["detail"]
    r = client.post("/api/jobs", files=upload(png(0, (96, 64)), []), data={"kind": "mosaic", "precision": "float32"})
    assert r.status_code == 202, r.text
    view = wait_for(client, r.json()["id"], finished)
    assert view["state"] == "done" and view["iteration"] == view["total"] == 1
    saved = tmp_path / "out.png"
    saved.write_bytes(client.get(view["result"]).content)
    assert Image.open(saved).size == (40, 27)  # "as it is" (96 px) capped to the server's largest side
    record = read_metadata(saved)
    assert record is not None and record["method"] == "johnson" and record["model"]["file"] == "mosaic.safetensors"


def test_a_restarted_server_sweeps_only_the_files_an_earlier_one_made(make_client: Any, tmp_path: Path) -> None:
    results = tmp_path / "data" / "results"
    results.mkdir(parents=True)
    stale = results / f"{'ab' * 16}.png"
    half_written = results / f".{'cd' * 16}.png.0123456789ab.tmp"
    theirs = results / "keep-me.png"
    for path in (stale, half_written, theirs):
        path.write_bytes(b"x")
    make_client(data_dir=str(tmp_path / "data"))
    assert not stale.exists() and not half_written.exists() and theirs.exists()
