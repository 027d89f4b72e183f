"""ImageNet-1k (ILSVRC 2012) class names, in the index order of the classifier's 1000 outputs."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from torch import Tensor


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    text = resources.files("stylegram.nets").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(names)} names, expected 1000")
    return names


def top_classes(probabilities: Tensor, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of a (1000,) probability vector, as (name, probability)."""
    names = class_names()
    values, indices = probabilities.topk(min(k, len(names)))
    return [(names[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]
