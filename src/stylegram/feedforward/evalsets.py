"""The images a super-resolution model is scored on: the project's held-out photos, or a folder in one of the
layouts the field's test sets (Set5, Set14, BSD100, Urban100, DIV2K validation) come in.

A folder is read in the first of these layouts that fits (names of folders are matched case-insensitively):

* ``HR/`` (or ``GT/``, ``GTmod12/``, ``original/``, ``*_HR/``) with the low-resolution images of the scale in
  ``LR_bicubic/X4/`` (or ``LRbicx4/``, ``LR/X4/``, ``*_LR_bicubic/X4/``): the EDSR/DAT "benchmark" layout, BasicSR's
  downloads and DIV2K. A low-resolution file pairs with the high-resolution one of the same name, with or without a
  ``x4`` suffix (``babyx4.png`` ↔ ``baby.png``). Given pairs are used as they are, so the numbers are comparable
  with published ones; the high-resolution image is cropped to the low-resolution one × scale ("mod crop").
* ``HR/`` alone, or a folder of images directly: each image (cropped to a multiple of the scale) is degraded as in
  training, a Gaussian blur of σ = ``blur`` then bicubic ↓scale, rounded to 8 bits as a saved file would be.

Every file's size is read from its header and checked when the set is made, before any image is decoded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from stylegram.core import images
from stylegram.core.errors import UsageError
from stylegram.feedforward import photos as bundled
from stylegram.feedforward.data import EXTENSIONS
from stylegram.feedforward.imaging import degrade
from stylegram.feedforward.metrics import SSIM_WINDOW
from stylegram.nets.superres import MIN_SIDE

HR_FOLDERS = ("hr", "gt", "gtmod12", "original")
EXTRA = frozenset({".bmp", ".tif", ".tiff"})  # Set14 and BSD100 copies often come as BMP or TIFF


@dataclass(frozen=True)
class EvalImage:
    """One scored image: a high-resolution file or bundled photo, and (optionally) its given low-resolution file."""

    name: str
    hr: Path | None  # None: a bundled photo
    lr: Path | None  # None: made from the high-resolution image by the training degradation
    photo: bundled.Photo | None = None

    def load(self, scale: int, blur: float) -> tuple[Tensor, Tensor]:
        """(high-resolution (1, 3, s·h, s·w), low-resolution (1, 3, h, w)), both in [0, 1] on 8-bit levels."""
        if self.photo is not None:
            picture = self.photo.load()
            if picture is None:
                raise UsageError(f"the bundled photo {self.name} is no longer installed")
        else:
            assert self.hr is not None
            picture = images.load_image(self.hr)
        hr = images.to_tensor(picture)
        if self.lr is not None:
            lr = images.to_tensor(images.load_image(self.lr))
            h, w = lr.shape[-2:]
        else:
            h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
        hr = hr[:, :, : h * scale, : w * scale]  # mod crop: top-left, as MATLAB's modcrop
        if self.lr is None:
            lr = torch.round(degrade(hr, scale, blur) * 255) / 255  # what a saved 8-bit file would hold
        return hr, lr


@dataclass(frozen=True)
class EvalSet:
    """The images of one evaluation, and how their low-resolution inputs are made."""

    name: str  # "held-out" or the folder's name
    images: tuple[EvalImage, ...]
    layout: str  # a few words for the report: "held-out photos", "HR + LR_bicubic/X4", "HR images"
    given_lr: bool  # low-resolution inputs come from files (else: blur + bicubic, as in training)

    @property
    def sources(self) -> list[str]:
        return [i.photo.source if i.photo is not None else i.name for i in self.images]


def held_out_set(scale: int) -> EvalSet:
    """The held-out photos of :mod:`stylegram.feedforward.photos` that this installation has."""
    found = [p for p in bundled.HELD_OUT if p.load() is not None]
    if not found:
        raise UsageError("none of the held-out photos is installed (scikit-image ships coffee and the motorcycle)")
    return EvalSet("held-out", tuple(EvalImage(p.name, None, None, p) for p in found), "held-out photos", False)


def find_set(folder: str | os.PathLike[str], scale: int) -> EvalSet:
    """The evaluation set in ``folder`` (see the module docstring for the layouts); sizes checked."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"evaluation folder not found: {os.fspath(folder)}" if not root.exists()
                         else f"--data must be a folder of images: {os.fspath(folder)}")
    hr_dir = _child(root, lambda n: n in HR_FOLDERS or n.endswith("_hr"))
    lr_dir = _lr_folder(root, scale)
    hr_files = _images_in(hr_dir or root)
    if not hr_files:
        where = f"'{hr_dir}'" if hr_dir else f"'{root}' (nor in an HR/ folder)"
        raise UsageError(f"no images in {where}")
    if hr_dir is not None and lr_dir is not None:
        pairs = _pairs(hr_files, lr_dir, scale)
        layout = f"{hr_dir.name} + {lr_dir.relative_to(root)}"
    else:
        pairs = [EvalImage(f.stem, f, None) for f in hr_files]
        layout = f"{hr_dir.name} images" if hr_dir else "images"
    for item in pairs:
        _check_sizes(item, scale)
    return EvalSet(root.name, tuple(pairs), layout, lr_dir is not None and hr_dir is not None)


def _child(root: Path, wanted: Callable[[str], bool]) -> Path | None:
    """The first sub-folder (sorted) whose lower-case name ``wanted`` accepts."""
    found = sorted(p for p in root.iterdir() if p.is_dir() and wanted(p.name.lower()))
    return found[0] if found else None


def _lr_folder(root: Path, scale: int) -> Path | None:
    """The folder of ×scale low-resolution images: LR_bicubic/X4, *_LR_bicubic/X4, LR/X4 or LRbicx4."""
    for parent in sorted(p for p in root.iterdir() if p.is_dir()):
        name = parent.name.lower()
        if name == f"lrbicx{scale}":
            return parent
        if name in ("lr_bicubic", "lr") or name.endswith("_lr_bicubic"):
            sub = _child(parent, lambda n: n == f"x{scale}")
            if sub is not None:
                return sub
    return None


def _images_in(folder: Path) -> list[Path]:
    wanted = EXTENSIONS | EXTRA
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted)


def _pairs(hr_files: Sequence[Path], lr_dir: Path, scale: int) -> list[EvalImage]:
    suffix = re.compile(rf"[_-]?x{scale}$", re.IGNORECASE)
    lr_by_stem = {suffix.sub("", p.stem).lower(): p for p in _images_in(lr_dir)}
    pairs = []
    for hr in hr_files:
        lr = lr_by_stem.get(suffix.sub("", hr.stem).lower())
        if lr is None:
            raise UsageError(f"no low-resolution image for '{hr.name}' in '{lr_dir}' (expected {hr.stem}.png or "
                             f"{hr.stem}x{scale}.png)")
        pairs.append(EvalImage(hr.stem, hr, lr))
    return pairs


def _check_sizes(item: EvalImage, scale: int) -> None:
    assert item.hr is not None
    w, h = _size(item.hr)
    if item.lr is not None:
        lw, lh = _size(item.lr)
        if not (0 <= w - lw * scale < scale and 0 <= h - lh * scale < scale):
            raise UsageError(f"'{item.lr}' is {lw}×{lh} pixels, not ×{scale} smaller than '{item.hr}' ({w}×{h})")
    else:
        lw, lh = w // scale, h // scale
    least = max(MIN_SIDE, -(-(SSIM_WINDOW + 2 * scale) // scale))
    if min(lw, lh) < least:
        raise UsageError(f"'{item.hr}' ({w}×{h}) is too small to score at ×{scale}: its low-resolution image must "
                         f"be at least {least}×{least} pixels")


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise UsageError(f"cannot read image '{path}': not an image, or in a format Pillow cannot read") from None
