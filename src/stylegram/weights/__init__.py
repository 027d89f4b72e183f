"""Where network weights come from. Imports run one way: file formats (:mod:`.format`) and the cache
(:mod:`.cache`) → the base sources and file loading (:mod:`.sources`) → the paper's normalised VGG16, a source
derived from ``vgg16-caffe`` (:mod:`.normalize`) → every source by id (:mod:`.registry`). :func:`load_vgg` is
the one entry point; :func:`list_sources` and :func:`verify` cover base and derived sources alike."""

from stylegram.weights.cache import cache_dir
from stylegram.weights.format import WeightsError
from stylegram.weights.registry import DERIVED_SOURCES, NORMALIZED_SOURCE, list_sources, load_vgg, source_ids, verify
from stylegram.weights.sources import (
    DEFAULT_SOURCE,
    SOURCES,
    DerivedSource,
    SourceStatus,
    VerifyResult,
    WeightsInfo,
    WeightSource,
    WeightsUnavailable,
)

__all__ = [
    "DEFAULT_SOURCE",
    "DERIVED_SOURCES",
    "NORMALIZED_SOURCE",
    "SOURCES",
    "DerivedSource",
    "SourceStatus",
    "VerifyResult",
    "WeightSource",
    "WeightsError",
    "WeightsInfo",
    "WeightsUnavailable",
    "cache_dir",
    "list_sources",
    "load_vgg",
    "source_ids",
    "verify",
]
