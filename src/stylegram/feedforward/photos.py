"""The photos this project may train and evaluate super-resolution on, and the one fixed split between them.

There is no COCO or DIV2K here: the photos are those bundled with packages the project installs (scikit-image's
``skimage.data``; matplotlib's and scikit-learn's sample images where those packages are present). The split is
declared once, in :data:`TRAIN` and :data:`HELD_OUT`, and never changes: a model trained with ``--data`` on the
folder :func:`write_split` writes for ``"train"`` has never seen a held-out photo, so ``eval-sr`` scores on the
held-out split are honest.

Choices, and why:

* ``coffee`` and the right view of ``stereo_motorcycle`` are held out: natural colour photos with fine texture
  and sharp edges, the kind of picture super-resolution is for. The *left* view of the motorcycle is the same
  scene from a few centimetres away, so it is in neither split (training on it would leak the held-out photo).
* ``grace_hopper`` (matplotlib) and ``china`` / ``flower`` (scikit-learn) are held out too, when installed;
  whichever are missing are left out and the evaluation names the photos it used.
* Training gets every other bundled photo: six colour ones and seven greyscale ones (converted to RGB; the
  network mostly learns luminance detail, which they have plenty of). ``colorwheel``, ``logo`` and the
  microscopy stacks are not photos; ``cat`` is ``chelsea`` again; ``eagle``, ``lily``, ``skin`` need a download.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from stylegram.core.atomic import atomic_write_bytes, check_writable
from stylegram.core.errors import UsageError

Split = Literal["train", "held-out"]


@dataclass(frozen=True)
class Photo:
    """One bundled photo: its name (the file stem :func:`write_split` uses) and where it comes from."""

    name: str
    source: str  # e.g. "skimage.data.coffee": recorded in evaluation reports and model records

    def load(self) -> Image.Image | None:
        """The photo as an RGB image, or None when the package that carries it is not installed."""
        return _LOADERS[self.name]()


def _skimage(name: str, index: int | None = None) -> Callable[[], Image.Image | None]:
    def load() -> Image.Image | None:
        from skimage import data  # imported here: scikit-image is slow to import

        try:
            array: Any = getattr(data, name)()
        except (AttributeError, ImportError, OSError, ValueError):  # not shipped by this scikit-image version
            return None
        return _rgb(array[index] if index is not None else array)

    return load


def _matplotlib(file: str) -> Callable[[], Image.Image | None]:
    def load() -> Image.Image | None:
        try:
            from matplotlib import cbook
        except ImportError:
            return None
        try:
            path = Path(cbook.get_sample_data(file, asfileobj=False))
            with Image.open(path) as im:
                return im.convert("RGB")
        except (OSError, ValueError):
            return None

    return load


def _sklearn(file: str) -> Callable[[], Image.Image | None]:
    def load() -> Image.Image | None:
        try:
            from sklearn import datasets  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return None
        path = Path(datasets.__file__).parent / "images" / file
        if not path.is_file():
            return None
        with Image.open(path) as im:
            return im.convert("RGB")

    return load


def _rgb(array: Any) -> Image.Image:
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8) if a.dtype.kind == "f" else \
            a.astype(np.uint8)
    img = Image.fromarray(a)
    return img.convert("RGB")


_COLOUR = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
_GREY = ("camera", "coins", "clock", "moon", "grass", "gravel", "brick")
_LOADERS: dict[str, Callable[[], Image.Image | None]] = {
    **{n: _skimage(n) for n in (*_COLOUR, *_GREY, "coffee")},
    "motorcycle_right": _skimage("stereo_motorcycle", 1),
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
}

TRAIN: tuple[Photo, ...] = tuple(Photo(n, f"skimage.data.{n}") for n in (*_COLOUR, *_GREY))
"""The training split: every bundled photo that is not held out (and not a near-copy of one)."""

HELD_OUT: tuple[Photo, ...] = (
    Photo("coffee", "skimage.data.coffee"),
    Photo("motorcycle_right", "skimage.data.stereo_motorcycle()[1]"),
    Photo("grace_hopper", "matplotlib sample_data/grace_hopper.jpg"),
    Photo("china", "sklearn.datasets images/china.jpg"),
    Photo("flower", "sklearn.datasets images/flower.jpg"),
)
"""The held-out split: never trained on; those whose package is missing are left out."""


def photos(split: Split) -> tuple[Photo, ...]:
    if split not in ("train", "held-out"):
        raise UsageError(f"split must be train or held-out, got {split!r}")
    return TRAIN if split == "train" else HELD_OUT


def load_split(split: Split) -> list[tuple[Photo, Image.Image]]:
    """The photos of ``split`` that this installation has, in the order declared."""
    found = [(p, p.load()) for p in photos(split)]
    return [(p, img) for p, img in found if img is not None]


def write_split(folder: str | os.PathLike[str], split: Split = "train") -> list[Path]:
    """Write the photos of ``split`` to ``folder`` as ``NAME.png`` (created if missing); the files written.

    Refused before anything is written: a folder that cannot be written, or a file of the same name that holds
    a different picture (nothing already there is ever replaced; an identical file is left as it is).
    """
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise UsageError(f"cannot write photos to '{os.fspath(folder)}': it is a file, not a folder")
    found = load_split(split)
    if not found:
        raise UsageError(f"none of the {split} photos is installed (scikit-image ships most of them)")
    planned = [(root / f"{p.name}.png", _png(img)) for p, img in found]
    for path, data in planned:
        check_writable(path, (), "photo")
        if path.exists() and not _same_picture(path, data):
            raise UsageError(f"'{path}' exists and is a different picture: choose another folder")
    for path, data in planned:
        if not path.exists():
            atomic_write_bytes(path, data)
    return [path for path, _ in planned]


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _same_picture(path: Path, data: bytes) -> bool:
    try:
        with Image.open(path) as old, Image.open(io.BytesIO(data)) as new:
            return old.size == new.size and np.array_equal(np.asarray(old.convert("RGB")), np.asarray(new))
    except (OSError, ValueError):
        return False
