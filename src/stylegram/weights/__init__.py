"""Where network weights come from: file formats (:mod:`.format`), the cache (:mod:`.cache`), the sources and
their loading (:mod:`.sources`), and the paper's normalised VGG16, a source derived from ``vgg16-caffe``
(:mod:`.normalize`). :func:`load_vgg` is the one entry point."""

from stylegram.weights.sources import (
    DEFAULT_SOURCE,
    NORMALIZED_SOURCE,
    SOURCES,
    SourceStatus,
    VerifyResult,
    WeightsError,
    WeightsInfo,
    WeightSource,
    WeightsUnavailable,
    cache_dir,
    list_sources,
    load_vgg,
    verify,
)

__all__ = [
    "DEFAULT_SOURCE",
    "NORMALIZED_SOURCE",
    "SOURCES",
    "SourceStatus",
    "VerifyResult",
    "WeightSource",
    "WeightsError",
    "WeightsInfo",
    "WeightsUnavailable",
    "cache_dir",
    "list_sources",
    "load_vgg",
    "verify",
]
