"""The shapes of the API's answers, for FastAPI's validation and the OpenAPI page at ``/docs``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    detail: str = Field(description="one line saying what is wrong and what to do")


class Accepted(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    position: int | None = Field(description="1 = next in line, 0 = running")


class JobView(BaseModel):
    id: str
    kind: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    position: int | None = Field(description="1 = next in line, 0 = running, null = finished")
    iteration: int = Field(description="loss evaluations done, over every stage")
    total: int = Field(description="loss evaluations of the whole job (0 until it starts)")
    stage: int
    stages: int
    losses: dict[str, float]
    eta: float | None = Field(description="seconds left (an estimate)")
    elapsed: float | None
    error: str | None
    notes: list[str]
    diverged: bool
    cancelling: bool
    created: float
    started: float | None
    finished: float | None
    device: str | None
    options: dict[str, Any]
    content: str = Field(description="the content file's name as uploaded")
    styles: list[str]
    preview: int = Field(description="how many previews have been rendered (0: none yet)")
    result: str | None = Field(description="where to download the result, once there is one")


class Limits(BaseModel):
    max_size: int
    max_iterations: int
    queue: int
    max_body_mb: float
    max_file_mb: float
    max_megapixels: float
    max_styles: int
    types: list[str]


class KindInfo(BaseModel):
    name: str
    description: str
    min_styles: int
    max_styles: int
    options: list[dict[str, Any]] = Field(description="the form fields, derived from the options dataclass")
    presets: dict[str, dict[str, Any]] = Field(description="named sets of option values (send them as fields)")


class Info(BaseModel):
    version: str
    devices: list[str]
    limits: Limits
    kinds: list[KindInfo]
    models: list[str] = Field(description="VGG weights installed here")
    token_required: bool


class Health(BaseModel):
    status: Literal["ok"]
    active: int = Field(description="jobs queued or running")
