"""The training photos of :mod:`stylegram.feedforward.loop`: any folder of images, as random square crops.

Sampling is stateless: the photo and crop of global sample k (k = ((iteration − 1)·world + rank)·batch + j) depend
only on (seed, k). Epochs visit every photo once, in an order drawn from (seed, epoch). So a resumed run sees
exactly the crops an uninterrupted one would, and ranks never see the same sample.

Unreadable files are skipped and counted, never fatal: files Pillow cannot even identify are dropped while
scanning; a file that fails later, while decoding, is replaced by the next readable photo in sorted order, which
keeps the sampling deterministic whenever the failure is discovered.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from stylegram.core import images
from stylegram.core.errors import StylegramError

EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})


class TrainDataError(StylegramError):
    """The training folder is missing or holds no readable photo."""


class TrainingImages:
    """The photos under ``folder`` (recursively), served as (B, 3, size, size) crops in [0, 1].

    By default each photo is first scaled so its shorter side is ``size`` (style training: the crop then shows
    most of the photo). ``native`` keeps photos at their own resolution (scaled up only when smaller than a
    crop), as super-resolution needs: its targets must keep the camera's detail. ``flips`` mirrors each crop
    left-right with probability ½, drawn from the same (seed, k) stream as the crop.
    """

    def __init__(self, folder: str | os.PathLike[str], size: int, *, native: bool = False,
                 flips: bool = False) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise TrainDataError(f"training folder not found: {os.fspath(folder)}" if not root.exists()
                                 else f"training data must be a folder of photos: {os.fspath(folder)}")
        self.size, self.native, self.flips = size, native, flips
        candidates = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        self.files = [p for p in candidates if _identifiable(p)]
        self.bad: set[int] = set()
        self._skipped_at_scan = len(candidates) - len(self.files)
        if not self.files:
            raise TrainDataError(f"no readable JPEG, PNG or WebP photos under {os.fspath(folder)}"
                                 + (f" ({len(candidates)} unreadable)" if candidates else ""))
        self._perm: tuple[int, Tensor] | None = None

    @property
    def skipped(self) -> int:
        return self._skipped_at_scan + len(self.bad)

    @property
    def readable(self) -> int:
        return len(self.files) - len(self.bad)

    def sample_ids(self, iteration: int, rank: int, world: int, batch: int) -> list[int]:
        """Global sample numbers k of this rank's batch at ``iteration`` (1-based)."""
        first = ((iteration - 1) * world + rank) * batch
        return list(range(first, first + batch))

    def photo_of(self, seed: int, k: int) -> int:
        """Index into ``files`` of global sample k: position k mod N of epoch k // N's permutation."""
        epoch, pos = divmod(k, len(self.files))
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(_mix(seed, epoch, 0x5EED))
            self._perm = (epoch, torch.randperm(len(self.files), generator=gen))
        return int(self._perm[1][pos])

    def batch(self, seed: int, iteration: int, rank: int, world: int, batch: int) -> Tensor:
        crops = [self.crop(seed, k) for k in self.sample_ids(iteration, rank, world, batch)]
        return torch.cat(crops)

    def crop(self, seed: int, k: int) -> Tensor:
        """Sample k: its photo scaled so the shorter side is ``size``, then a random size×size crop; (1, 3, s, s)."""
        img = self._load(self.photo_of(seed, k))
        gen = torch.Generator().manual_seed(_mix(seed, k, 0xC409))
        x = images.to_tensor(img)
        _, _, h, w = x.shape
        top = int(torch.randint(h - self.size + 1, (1,), generator=gen))
        left = int(torch.randint(w - self.size + 1, (1,), generator=gen))
        crop = x[:, :, top : top + self.size, left : left + self.size]
        if self.flips and float(torch.rand((), generator=gen)) < 0.5:
            crop = crop.flip(-1)
        return crop.contiguous()

    def previews(self, n: int) -> Tensor:
        """The first ``n`` readable photos (sorted by path), centre crops: the fixed validation set (n, 3, s, s)."""
        out = []
        for i in range(min(n, len(self.files))):
            x = images.to_tensor(self._load(i))
            _, _, h, w = x.shape
            top, left = (h - self.size) // 2, (w - self.size) // 2
            out.append(x[:, :, top : top + self.size, left : left + self.size])
        return torch.cat(out)

    def _load(self, index: int) -> Image.Image:
        """Photo ``index`` scaled so its shorter side is ``size``; an unreadable one is replaced by the next."""
        n = len(self.files)
        for step in range(n):
            i = (index + step) % n
            if i in self.bad:
                continue
            try:
                img = images.load_image(self.files[i])
            except images.ImageError:
                self.bad.add(i)
                continue
            if self.native and min(img.size) >= self.size:
                return img
            return _shorter_side_to(img, self.size)
        raise TrainDataError(f"none of the {n} photos could be decoded")


class IterationBatches(torch.utils.data.Dataset[tuple[Tensor, list[int]]]):
    """Item i is the batch of iteration i of one rank, and the photos found unreadable so far.

    Served through a DataLoader so that worker processes decode photos while the model trains; since a batch
    depends only on (seed, iteration, rank), how many workers there are changes nothing in the result. The
    unreadable photos a worker finds travel back with its batches, so the main process still counts them.
    """

    def __init__(self, photos: TrainingImages, seed: int, rank: int, world: int, batch: int) -> None:
        self.photos, self.seed, self.rank, self.world, self.batch = photos, seed, rank, world, batch

    def __getitem__(self, iteration: int) -> tuple[Tensor, list[int]]:
        x = self.photos.batch(self.seed, iteration, self.rank, self.world, self.batch)
        return x, sorted(self.photos.bad)


def _identifiable(path: Path) -> bool:
    """Whether Pillow recognises the file from its header (cheap: pixels are not decoded here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.width > 0 and im.height > 0
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False


def _shorter_side_to(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, int(w * scale + 0.5)), max(size, int(h * scale + 0.5)))
    return img if new == img.size else img.resize(new, Image.Resampling.BICUBIC if scale > 1 else
                                                  Image.Resampling.LANCZOS)


def _mix(seed: int, k: int, salt: int) -> int:
    """A 63-bit generator seed from (seed, k, salt); distinct inputs give unrelated streams."""
    x = (seed * 0x9E3779B97F4A7C15 + k * 0xBF58476D1CE4E5B9 + salt) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 29)) & 0x7FFFFFFFFFFFFFFF
