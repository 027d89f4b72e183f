"""Every weights source by id: the base sources (:data:`~stylegram.weights.sources.SOURCES`) and the sources
derived from them (:data:`DERIVED_SOURCES`, today the normalised VGG16), behind one :func:`load_vgg`,
:func:`list_sources` and :func:`verify`.

Imports run one way: ``format``, ``cache`` → ``sources`` → ``normalize`` → ``registry``. A new derived source is
one module building on ``sources`` and one entry in :data:`DERIVED_SOURCES`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import torch

from stylegram.core.device import resolve_device
from stylegram.nets.vgg import VGG, Pooling
from stylegram.weights.format import NormKind, WeightsError
from stylegram.weights.normalize import NORMALIZED
from stylegram.weights.sources import (
    DEFAULT_SOURCE,
    SOURCES,
    DerivedSource,
    SourceStatus,
    VerifyResult,
    WeightsInfo,
    load_file,
    load_source,
    source_status,
    verify_source,
)

__all__ = ["DERIVED_SOURCES", "NORMALIZED_SOURCE", "list_sources", "load_vgg", "source_ids", "verify"]

DERIVED_SOURCES: dict[str, DerivedSource] = {NORMALIZED.id: NORMALIZED}
# The paper's "normalised" VGG16 (mean activation 1 per filter), computed from vgg16-caffe: see normalize.py.
NORMALIZED_SOURCE = NORMALIZED.id


def source_ids() -> list[str]:
    """Every id :func:`load_vgg` accepts: the base sources, then the derived ones."""
    return [*SOURCES, *DERIVED_SOURCES]


def load_vgg(
    source: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    pooling: Pooling = "avg",
    classifier: bool | None = None,
    allow_download: bool = True,
    device: torch.device | str | None = None,
) -> tuple[VGG, WeightsInfo]:
    """A frozen VGG and a record of its weights.

    ``source`` defaults to :data:`DEFAULT_SOURCE`. With ``path``, that file is loaded instead: the
    normalisation recorded in it (files this package wrote) decides, else ``source``'s (caffe for
    ``vgg16-caffe``), else torchvision's. ``classifier=None`` loads fc6–fc8 when the weights have them.
    Every argument is checked before anything is read, converted or calibrated.
    """
    fallback = _normalization(source) if source is not None else None
    if pooling not in get_args(Pooling):
        raise WeightsError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    dev = resolve_device(device) if device is not None else None
    if path is not None:
        file = Path(path).expanduser()
        return load_file(file, fallback, pooling=pooling, classifier=classifier, device=dev)
    source = source or DEFAULT_SOURCE
    if source in DERIVED_SOURCES:
        return DERIVED_SOURCES[source].load(pooling, classifier, allow_download, dev)
    return load_source(SOURCES[source], pooling=pooling, classifier=classifier, allow_download=allow_download,
                       device=dev)


def _normalization(source_id: str) -> NormKind:
    if source_id in SOURCES:
        return SOURCES[source_id].normalization
    if source_id in DERIVED_SOURCES:
        return DERIVED_SOURCES[source_id].normalization
    raise WeightsError(f"unknown weights source {source_id!r}; choose one of {', '.join(source_ids())}")


def list_sources(allow_download: bool = False) -> list[SourceStatus]:
    """Each source's local file and checksum, each derived source right after its base; with
    ``allow_download``, downloadable ones count as present. A derived source not built yet is available
    exactly when its base is (it is built from it on first use)."""
    statuses = []
    for src in SOURCES.values():
        base = source_status(src, allow_download)
        statuses.append(base)
        statuses.extend(d.status(base) for d in DERIVED_SOURCES.values() if d.base == src.id)
    return statuses


def verify() -> list[VerifyResult]:
    """Every local weights file re-hashed in full against its expected checksum (slow for 500 MB files), each
    derived source's after its base's; a source with no file is one ``missing`` result."""
    results = []
    for src in SOURCES.values():
        results.extend(verify_source(src))
        results.extend(d.verify() for d in DERIVED_SOURCES.values() if d.base == src.id)
    return results
