"""The job runner: a bounded queue and one worker thread per device, each running one job at a time.

Running two optimisations at once on one device does not finish them sooner (each takes the whole device), so
a device runs one job and the rest wait in line with a position. :class:`JobRunner` is the whole interface the
HTTP layer uses; :class:`LocalRunner` implements it in-process, and a deployment for many users can implement
it on a distributed queue instead (one worker per device there too).

Each job keeps a short log of numbered events (state changes, progress at most four times a second) that the
event stream replays from any id, and its latest preview as a JPEG (rendered at most once a second: rendering
costs a copy of the image).
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from stylegram.core import images
from stylegram.core.errors import StylegramError
from stylegram.core.events import StepEvent
from stylegram.web.tasks import Request, Task
from stylegram.web.uploads import remove_quietly

State = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: tuple[State, ...] = ("done", "failed", "cancelled")
EVENT_INTERVAL = 0.25  # seconds between progress events: at most four a second
PREVIEW_INTERVAL = 1.0  # seconds between preview renders
PREVIEW_SIDE = 512  # longest side of a preview JPEG
KEPT_EVENTS = 256  # per job; a client that falls further behind gets a snapshot first

log = logging.getLogger("stylegram.web")


class QueueFull(Exception):
    """No room for another job; ``retry_after`` (seconds) is a guess at when there will be."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server holds its limit of jobs; try again in about {retry_after} s")
        self.retry_after = retry_after


class NotCancellable(Exception):
    """The job has already finished."""


@dataclass(frozen=True)
class Event:
    id: int
    type: str  # "state" or "progress"
    data: dict[str, Any]


@dataclass
class Job:
    """One job's live state; every field is read and written under the runner's lock."""

    id: str
    request: Request
    output: Path
    state: State = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    device: str | None = None
    done: int = 0  # evaluations done, over every stage
    total: int = 0
    stage: int = 0
    stages: int = 1
    losses: dict[str, float] = field(default_factory=dict)
    eta: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    diverged: bool = False
    cancelling: bool = False
    has_result: bool = False
    preview: bytes | None = None
    preview_version: int = 0
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=KEPT_EVENTS))
    next_event: int = 1
    stop: threading.Event = field(default_factory=threading.Event)
    work: list[tuple[int, int]] = field(default_factory=list)  # (evaluations, pixels per evaluation) per stage
    run_start: float = 0.0
    last_event: float = 0.0
    last_preview: float = 0.0

    def view(self, position: int | None) -> dict[str, Any]:
        """A JSON-ready snapshot (``position``: 1 = next in line, 0 = running, None = finished)."""
        elapsed = None if self.started is None else (self.finished or time.time()) - self.started
        return {"id": self.id, "kind": self.request.kind.name, "state": self.state, "position": position,
                "iteration": self.done, "total": self.total, "stage": self.stage + 1, "stages": self.stages,
                "losses": dict(self.losses), "eta": self.eta, "elapsed": elapsed, "error": self.error,
                "notes": list(self.notes), "diverged": self.diverged, "cancelling": self.cancelling,
                "created": self.created, "started": self.started, "finished": self.finished, "device": self.device,
                "options": self.request.options.to_dict(), "content": self.request.content.name,
                "styles": [s.name for s in self.request.styles], "preview": self.preview_version,
                "result": f"/api/jobs/{self.id}/result.png" if self.has_result else None}


class JobRunner(Protocol):
    """What the HTTP layer needs of a job runner."""

    def start(self) -> None: ...
    def submit(self, request: Request) -> dict[str, Any]: ...
    def has_room(self) -> bool: ...
    def retry_after(self) -> int: ...
    def view(self, job_id: str) -> dict[str, Any]: ...
    def views(self) -> list[dict[str, Any]]: ...
    def cancel(self, job_id: str) -> dict[str, Any]: ...
    def events_after(self, job_id: str, after: int) -> tuple[list[Event], bool]: ...
    def preview(self, job_id: str) -> bytes | None: ...
    def result(self, job_id: str) -> Path | None: ...
    def close(self, timeout: float = 10.0) -> None: ...


class LocalRunner:
    """Jobs in this process: one worker thread per device, a queue of at most ``capacity`` jobs (running ones
    included), finished jobs kept ``keep_seconds`` and at most ``keep`` of them, results in ``folder``.

    ``notify(job_id)`` is called (from any thread, under the lock: it must not block) after every new event.
    """

    def __init__(self, folder: Path, devices: Sequence[torch.device], *, capacity: int, keep: int,
                 keep_seconds: float, notify: Callable[[str], None] | None = None) -> None:
        self.folder, self.devices, self.capacity = folder, list(devices), capacity
        self.keep, self.keep_seconds, self.notify = keep, keep_seconds, notify
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._durations: deque[float] = deque(maxlen=8)
        self._closing = False

    # ------------------------------------------------------------------------------------------- the API

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            _sweep(self.folder)
            for device in self.devices:
                t = threading.Thread(target=self._work, args=(device,), name=f"stylegram-worker-{device}",
                                     daemon=True)
                self._threads.append(t)
                t.start()

    def has_room(self) -> bool:
        with self._lock:
            return not self._closing and self._active() < self.capacity

    def retry_after(self) -> int:
        with self._lock:
            return self._retry_after_locked()

    def submit(self, request: Request) -> dict[str, Any]:
        with self._lock:
            self._prune()
            if self._closing:
                raise QueueFull(30)
            if self._active() >= self.capacity:
                raise QueueFull(self._retry_after_locked())
            job_id = uuid.uuid4().hex
            job = Job(job_id, request, self.folder / "results" / f"{job_id}.png")
            self._jobs[job_id] = job
            self._queue.append(job)
            self._publish(job, "state", job.view(len(self._queue)))
            self._lock.notify_all()
            return job.view(len(self._queue))

    def view(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs[job_id]
            return job.view(self._position(job))

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            self._prune()
            return [j.view(self._position(j)) for j in sorted(self._jobs.values(), key=lambda j: j.created)]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Drop a queued job; ask a running one to stop (it stops within two evaluations and keeps its image)."""
        with self._lock:
            job = self._jobs[job_id]
            if job.state in FINISHED:
                raise NotCancellable(f"job {job_id} has already {'ended' if job.state != 'done' else 'finished'}")
            if job.state == "queued":
                self._queue.remove(job)
                self._finish(job, "cancelled")
                self._publish_positions()
            else:
                job.stop.set()
                job.cancelling = True
                self._publish(job, "state", job.view(0))
            return job.view(self._position(job))

    def events_after(self, job_id: str, after: int) -> tuple[list[Event], bool]:
        """The events after id ``after`` (a snapshot first when older ones were dropped), and whether the
        job has finished with nothing left to send."""
        with self._lock:
            job = self._jobs[job_id]
            events = [e for e in job.events if e.id > after]
            if job.events and after < job.events[0].id - 1:
                events.insert(0, Event(job.events[0].id - 1, "state", job.view(self._position(job))))
            return events, job.state in FINISHED

    def preview(self, job_id: str) -> bytes | None:
        with self._lock:
            return self._jobs[job_id].preview

    def result(self, job_id: str) -> Path | None:
        with self._lock:
            job = self._jobs[job_id]
            return job.output if job.has_result else None

    def close(self, timeout: float = 10.0) -> None:
        """Drop the queue, stop running jobs (their images are kept), and wait for the workers."""
        with self._lock:
            self._closing = True
            while self._queue:
                self._finish(self._queue.popleft(), "cancelled", "the server is stopping")
            for job in self._jobs.values():
                if job.state == "running":
                    job.stop.set()
                    job.cancelling = True
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def threads_alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------------------------------ the worker

    def _work(self, device: torch.device) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if self._closing:
                    return
                job = self._queue.popleft()
                job.state, job.started, job.device = "running", time.time(), str(device)
                self._publish(job, "state", job.view(0))
                self._publish_positions()
            self._run(job, device)

    def _run(self, job: Job, device: torch.device) -> None:
        try:
            task = job.request.kind.prepare(job.request, job.output, device)
            with self._lock:
                job.total, job.notes, job.work = task.total, list(task.notes), _stage_work(task)
                job.run_start = time.monotonic()
                self._publish(job, "state", job.view(0))
            if job.stop.is_set():
                self._end(job, "cancelled")
                return
            result = task.run(lambda event: self._step(job, event))
            stopped = bool(getattr(result, "stopped", False))
            with self._lock:
                job.diverged = bool(getattr(result, "diverged", False))
                job.losses = dict(getattr(result, "losses", job.losses))
                job.has_result = job.output.is_file()
            self._end(job, "cancelled" if stopped and job.stop.is_set() else "done")
        except StylegramError as e:
            self._end(job, "failed", str(e))
        except Exception:  # a bug: the client gets a generic line, the log the traceback
            log.exception("job %s failed", job.id)
            self._end(job, "failed", "unexpected error in the server (its log has the details)")

    def _end(self, job: Job, state: State, error: str | None = None) -> None:
        with self._lock:
            if job.started is not None:
                self._durations.append(time.time() - job.started)
            self._finish(job, state, error)
            self._prune()

    def _step(self, job: Job, event: StepEvent) -> bool:
        now = time.monotonic()
        last = event.iteration >= event.total
        preview = None
        if last or now - job.last_preview >= PREVIEW_INTERVAL:
            job.last_preview = now
            preview = _preview(event)  # outside the lock: encoding takes a few milliseconds
        with self._lock:
            job.done += 1
            job.stage, job.stages, job.losses = event.stage, event.stages, dict(event.losses)
            job.eta = _eta(job, event, now)
            if preview is not None:
                job.preview, job.preview_version = preview, job.preview_version + 1
            if last or preview is not None or now - job.last_event >= EVENT_INTERVAL:
                job.last_event = now
                data = {k: v for k, v in job.view(0).items()
                        if k in ("iteration", "total", "stage", "stages", "losses", "eta", "elapsed", "preview")}
                self._publish(job, "progress", data)
        return job.stop.is_set()

    # ------------------------------------------------------------------------------- under the lock only

    def _active(self) -> int:
        return sum(j.state in ("queued", "running") for j in self._jobs.values())

    def _position(self, job: Job) -> int | None:
        if job.state == "running":
            return 0
        if job.state == "queued":
            return self._queue.index(job) + 1
        return None

    def _finish(self, job: Job, state: State, error: str | None = None) -> None:
        job.state, job.error, job.finished, job.eta = state, error, time.time(), None
        job.cancelling = False
        remove_quietly(job.request.uploads())  # a job that ends (or is dropped from the queue) needs them no more
        self._publish(job, "state", job.view(None))

    def _publish(self, job: Job, kind: str, data: dict[str, Any]) -> None:
        job.events.append(Event(job.next_event, kind, data))
        job.next_event += 1
        if self.notify is not None:
            self.notify(job.id)

    def _publish_positions(self) -> None:
        for i, queued in enumerate(self._queue):
            self._publish(queued, "state", queued.view(i + 1))

    def _retry_after_locked(self) -> int:
        typical = sum(self._durations) / len(self._durations) if self._durations else 10.0
        return max(1, min(600, round(typical / max(1, len(self.devices)))))

    def _prune(self) -> None:
        """Forget finished jobs older than ``keep_seconds`` or beyond the newest ``keep``, with their files."""
        finished = sorted((j for j in self._jobs.values() if j.state in FINISHED), key=lambda j: j.finished or 0)
        cutoff = time.time() - self.keep_seconds
        drop = [j for i, j in enumerate(finished) if (j.finished or 0) < cutoff or i < len(finished) - self.keep]
        for job in drop:
            del self._jobs[job.id]
            remove_quietly([job.output, *job.request.uploads()])


def _sweep(folder: Path) -> None:
    """Remove what an earlier server left in ``folder`` (jobs do not outlive their server): only files with the
    names this module makes, so a folder shared with anything else loses nothing else."""
    made = re.compile(r"(\.)?[0-9a-f]{32}\.(png|jpg|webp)(\.[0-9a-f]{12}\.tmp)?")
    for sub in ("uploads", "results"):
        if (folder / sub).is_dir():
            remove_quietly([p for p in (folder / sub).iterdir() if made.fullmatch(p.name)])


def _stage_work(task: Task) -> list[tuple[int, int]]:
    """(evaluations, pixels) of each stage, for the time left: a finer stage costs more per evaluation."""
    stages = getattr(task, "stages", None) or []
    work = [(int(s.iterations), int(s.size) ** 2) for s in stages if hasattr(s, "size")]
    return work or [(task.total, 1)]


def _eta(job: Job, event: StepEvent, now: float) -> float | None:
    """Seconds left, from the time per pixel-evaluation so far (the first one includes the set-up)."""
    work = job.work if len(job.work) == event.stages else [(event.total, 1)] * event.stages
    done = sum(n * px for n, px in work[: event.stage]) + event.iteration * work[event.stage][1]
    total = sum(n * px for n, px in work)
    if done <= 0:
        return None
    return max(0.0, (now - job.run_start) / done * (total - done))


def _preview(event: StepEvent) -> bytes | None:
    """The event's image as a JPEG, or None for an event without one (a feed-forward model's)."""
    try:
        image = event.image()
    except RuntimeError:
        return None
    pil = images.to_pil(image)
    if max(pil.size) > PREVIEW_SIDE:
        pil = images.resize_longest(pil, PREVIEW_SIDE)
    out = io.BytesIO()
    pil.save(out, format="JPEG", quality=85)
    return out.getvalue()
