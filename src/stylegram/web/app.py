"""The FastAPI app: routes that check a request, hand it to the job runner, and report; no work in a handler.

:func:`create_app` builds it from :class:`~stylegram.web.config.ServerOptions`. Every
:class:`~stylegram.core.errors.StylegramError` a request raises (a bad option, a bad image) is a 422 with the
library's one-line message; a file over the size limit is a 413; a full queue a 429 with ``Retry-After``; anything
else a 500 with a generic message (the traceback goes to the server's log).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from stylegram.core.device import resolve_device
from stylegram.core.errors import StylegramError
from stylegram.core.options import Options
from stylegram.core.record import stylegram_version
from stylegram.gatys.options import START_IMAGES
from stylegram.web import forms, sse
from stylegram.web.config import ServerOptions, format_bytes
from stylegram.web.jobs import JobRunner, LocalRunner, NotCancellable, QueueFull
from stylegram.web.schemas import Accepted, Health, Info, JobView, KindInfo, Limits, Problem
from stylegram.web.security import Guard
from stylegram.web.tasks import Kind
from stylegram.web.tasks import Request as JobRequest
from stylegram.web.tasks import kinds as server_kinds
from stylegram.web.uploads import (
    TYPES,
    FileTooLarge,
    StoredImage,
    UploadError,
    client_name,
    remove_quietly,
    store_image,
)

STATIC = Path(__file__).with_name("static")
INIT_CHOICES = START_IMAGES  # never a path: the CLI's "or an image file" stays the CLI's
log = logging.getLogger("stylegram.web")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 413, 422, 429)}


def create_app(options: ServerOptions | None = None) -> FastAPI:
    """The app, its runner and its data folder (made now, removed at shutdown when it was a temporary one)."""
    options = options or ServerOptions()
    folder = Path(options.data_dir) if options.data_dir else Path(tempfile.mkdtemp(prefix="stylegram-serve-"))
    owned = options.data_dir is None
    devices = [resolve_device(d) for d in options.devices] if options.devices else [resolve_device(None)]
    hub = sse.Hub()
    runner: JobRunner = LocalRunner(folder, devices, capacity=options.queue, keep=options.keep_results,
                                    keep_seconds=options.keep_minutes * 60, notify=hub.notify)
    kinds = server_kinds(options.models_dir)
    policy = _policy(options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        runner.start()
        try:
            yield
        finally:
            hub.close()
            await asyncio.to_thread(runner.close, 10.0)
            if owned:
                shutil.rmtree(folder, ignore_errors=True)

    app = FastAPI(title="stylegram", version=stylegram_version(), lifespan=lifespan,
                  description="Neural style transfer as a service: upload a photo and paintings, follow the job.")
    app.add_middleware(Guard, options=options)
    app.state.runner, app.state.hub, app.state.folder = runner, hub, folder
    _errors(app)
    info = _info(options, devices, kinds, policy)
    _job_routes(app, runner, hub, kinds, policy, options, folder)

    @app.get("/api/health", response_model=Health, responses=ERRORS)
    def health() -> dict[str, Any]:
        return {"status": "ok", "active": sum(v["state"] in ("queued", "running") for v in runner.views())}

    @app.get("/api/info", response_model=Info, responses=ERRORS)
    def get_info() -> Info:
        return info

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _policy(options: ServerOptions) -> forms.Policy:
    from stylegram.weights import list_sources

    models = tuple(s.id for s in list_sources(allow_download=False) if s.available)
    caps = {"size": options.max_size, "coarse_size": options.max_size, "iterations": options.max_iterations,
            "stage_iterations": options.max_iterations}
    # backend: the server offers *.safetensors models, which the onnxruntime backend cannot read.
    return forms.Policy(caps=caps, choices={"init": INIT_CHOICES, "model": models, "backend": ("torch",)})


def _info(options: ServerOptions, devices: list[Any], kinds: dict[str, Kind], policy: forms.Policy) -> Info:
    max_styles = max(k.max_styles for k in kinds.values())
    limits = Limits(max_size=options.max_size, max_iterations=options.max_iterations, queue=options.queue,
                    max_body_mb=options.max_body_mb, max_file_mb=options.max_file_mb,
                    max_megapixels=options.max_megapixels, max_styles=max_styles, types=sorted(TYPES))
    described = [KindInfo(name=k.name, description=k.description, min_styles=k.min_styles, max_styles=k.max_styles,
                          options=[forms.field_schema(f, policy) for f in forms.web_fields(k.options)],
                          presets=k.presets)
                 for k in kinds.values()]
    return Info(version=stylegram_version(), devices=[str(d) for d in devices], limits=limits, kinds=described,
                models=list(policy.choices["model"]), token_required=options.token is not None)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(FileTooLarge)
    async def too_large(request: Request, exc: FileTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(StylegramError)
    async def user_error(request: Request, exc: StylegramError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"retry-after": str(exc.retry_after)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "unexpected error in the server (its log has the details)"}, status_code=500)


def _job_routes(app: FastAPI, runner: JobRunner, hub: sse.Hub, kinds: dict[str, Kind], policy: forms.Policy,
                options: ServerOptions, folder: Path) -> None:
    max_styles = max(k.max_styles for k in kinds.values())
    body = forms.openapi_body(kinds["gatys"].options, policy, max_styles)

    @app.post("/api/jobs", status_code=202, response_model=Accepted, openapi_extra=body, responses=ERRORS)
    async def submit(request: Request) -> JSONResponse:
        """Start a job: multipart with ``content``, one or more ``style`` files, ``kind`` and options."""
        if not runner.has_room():  # before anything is stored
            raise QueueFull(runner.retry_after())
        async with request.form(max_files=2 + max_styles, max_fields=200, max_part_size=64 * 1024) as form:
            kind, fields, content, styles = _split(form, kinds)
            job_options = forms.parse_options(kind.options, fields, policy)
            uploads = [(await _read(u, options.max_file), u.filename) for u in (content, *styles)]
        stored = await run_in_threadpool(_store, uploads, folder / "uploads", options)
        job = JobRequest(kind, _bounded(job_options, stored[0], options.max_size), stored[0], stored[1:])
        try:
            view = runner.submit(job)
        except BaseException:
            remove_quietly(job.uploads())
            raise
        return JSONResponse({k: view[k] for k in ("id", "state", "position")}, status_code=202,
                            headers={"location": f"/api/jobs/{view['id']}"})

    @app.get("/api/jobs", response_model=list[JobView], responses=ERRORS)
    def list_jobs() -> list[dict[str, Any]]:
        return runner.views()

    @app.get("/api/jobs/{job_id}", response_model=JobView, responses=ERRORS)
    def get_job(job_id: str) -> dict[str, Any]:
        return _found(runner.view, job_id)

    @app.delete("/api/jobs/{job_id}", status_code=202, response_model=JobView, responses=ERRORS)
    def cancel_job(job_id: str) -> dict[str, Any]:
        """Cancel: a queued job is dropped, a running one stops within two evaluations and keeps its image."""
        try:
            return _found(runner.cancel, job_id)
        except NotCancellable as e:
            raise HTTPException(409, str(e)) from None

    @app.get("/api/jobs/{job_id}/events", responses=ERRORS,
             response_class=StreamingResponse, description="Server-Sent Events; resume with Last-Event-ID")
    def events(job_id: str, request: Request, after: int = 0) -> StreamingResponse:
        _found(runner.view, job_id)
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else after
        return StreamingResponse(sse.stream(runner, hub, job_id, start), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    _file_routes(app, runner)


def _file_routes(app: FastAPI, runner: JobRunner) -> None:
    @app.get("/api/jobs/{job_id}/preview.jpg", response_class=Response, responses=ERRORS)
    def preview(job_id: str) -> Response:
        data = _found(runner.preview, job_id)
        if data is None:
            raise HTTPException(404, "no preview yet: the job has not made its first step")
        return Response(data, media_type="image/jpeg", headers={"cache-control": "no-store"})

    @app.get("/api/jobs/{job_id}/result.png", response_class=FileResponse, responses=ERRORS)
    def result(job_id: str) -> FileResponse:
        """The result, with the same metadata record (PNG text chunk ``stylegram``) as the CLI's outputs."""
        path = _found(runner.result, job_id)
        if path is None or not path.is_file():
            raise HTTPException(404, "no result yet")
        return FileResponse(path, media_type="image/png", filename=f"stylegram-{job_id[:8]}.png")


T = TypeVar("T")


def _found(get: Callable[[str], T], job_id: str) -> T:
    try:
        return get(job_id)
    except KeyError:
        raise HTTPException(404, f"no job {job_id[:40]!r} (finished jobs are kept for a while, then removed)") \
            from None


def _split(form: FormData, kinds: dict[str, Kind]) -> tuple[Kind, dict[str, str], UploadFile, list[UploadFile]]:
    """The kind, the option fields, the content file and the style files of a submitted form."""
    fields: dict[str, str] = {}
    files: dict[str, list[UploadFile]] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            files.setdefault(key, []).append(value)
        elif key in fields:
            raise UploadError(f"{key} is given twice")
        else:
            fields[key] = value
    name = fields.pop("kind", "gatys") or "gatys"
    if name not in kinds:
        raise UploadError(f"unknown kind {name!r}; choose one of {', '.join(kinds)}")
    kind = kinds[name]
    extra = sorted(set(files) - {"content", "style"})
    if extra:
        raise UploadError(f"unexpected file field(s): {', '.join(extra)} (send content and style)")
    content, styles = files.get("content", []), files.get("style", [])
    if len(content) != 1:
        raise UploadError("send exactly one content image (field 'content')")
    if not kind.min_styles <= len(styles) <= kind.max_styles:
        want = f"{kind.min_styles} to {kind.max_styles}" if kind.max_styles else "no"
        raise UploadError(f"{kind.name} takes {want} style image(s) (field 'style'), got {len(styles)}")
    return kind, fields, content[0], styles


async def _read(upload: UploadFile, limit: int) -> bytes:
    """The file's bytes; one over ``limit`` is refused from its size, before it is read."""
    if upload.size is not None and upload.size > limit:
        name = client_name(upload.filename)
        raise FileTooLarge(f"'{name}' is {format_bytes(upload.size)}, more than the limit of {format_bytes(limit)}")
    return await upload.read(limit + 1)


def _bounded(job_options: Options, content: StoredImage, max_size: int) -> Options:
    """Options whose "as the input is" size (None) would exceed the server's largest output, capped to it."""
    size = getattr(job_options, "size", 0)
    if size is None and max(content.width, content.height) > max_size:
        return job_options.replace(size=max_size)
    return job_options


def _store(uploads: list[tuple[bytes, str | None]], folder: Path, options: ServerOptions) -> list[StoredImage]:
    stored: list[StoredImage] = []
    try:
        for i, (data, name) in enumerate(uploads):
            what = "content" if i == 0 else f"style {i}"
            stored.append(store_image(data, name, what, folder, max_bytes=options.max_file,
                                      max_pixels=options.max_pixels))
    except BaseException:
        remove_quietly([s.path for s in stored])
        raise
    return stored
