"""Training ZFNet on a folder with one subfolder per class, saving a checkpoint every few epochs (§3).

As in the paper: SGD with momentum 0.9 and learning rate 10⁻², dropout 0.5 in the fully connected layers,
each image's shorter side scaled to 8/7 of the crop size (256 for 224) and a random crop and flip taken, and
after every step each convolution filter whose RMS exceeds 0.1 renormalised to 0.1. Departures: no learning
rate schedule (the paper lowers it by hand on a plateau); He initialisation (see :mod:`stylegram.nets.zfnet`);
``width`` scales the filter counts and ``hidden`` the fully connected layers, so that a small data set trains
on a CPU. Checkpoints ``epoch_NNN.safetensors`` (see :mod:`.zfnet_files`) are what ``stylegram visualize
evolution`` reads. Runs are repeatable: same seed, same data, same machine, same weights.

After every epoch the whole training state (weights, momentum, random state, the per-epoch history) is written
to ``train_state.ckpt`` beside the checkpoints, through the one checkpoint mechanism (:mod:`stylegram.optim.
checkpoint`). ``resume=True`` goes on from it: from the last completed epoch (an interrupted epoch is run again
from its start), to the same weights on the same machine as a run that was never stopped. ``epochs`` and
``checkpoint_every`` may change on resume (to train longer); the other options and the data may not.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stylegram.core import images
from stylegram.core.atomic import check_writable
from stylegram.core.errors import StylegramError, UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.options import Options, option
from stylegram.core.record import new_record
from stylegram.nets.zfnet import RMS_RADIUS, ZFNET, ZFNet, scaled
from stylegram.optim import checkpoint
from stylegram.visualize.top import EXTENSIONS
from stylegram.visualize.zfnet_files import save_zfnet

STATE_FILE = "train_state.ckpt"
STATE_FORMAT = "stylegram-zfnet-train-1"


@dataclass(frozen=True)
class ZFTrainOptions(Options):
    epochs: int = option(30, "passes over the training folder", min=1, max=100000)
    batch_size: int = option(32, "images per step (the paper's is 128)", min=1, max=4096)
    lr: float = option(0.01, "SGD learning rate (the paper's 1e-2)", above=0)
    momentum: float = option(0.9, "SGD momentum", min=0, max=0.999)
    size: int = option(224, "side of the square training crops in pixels (the paper's 224; ZFNet needs 47 or more)",
                       min=47, max=1024)
    width: float = option(1.0, "filter count multiplier (1: 96, 256, 384, 384, 256 filters)", above=0, max=4)
    hidden: int = option(4096, "width of fc6 and fc7", min=1, max=16384)
    dropout: float = option(0.5, "dropout in fc6 and fc7", min=0, max=0.95)
    radius: float = option(RMS_RADIUS, "renormalise filters whose RMS exceeds this (the paper's 0.1)", above=0)
    checkpoint_every: int = option(1, "write a checkpoint every N epochs (and after the last)", min=1)
    seed: int = option(0, "random seed (weights, crop order and crops)", min=0)


class ClassFolder:
    """Images under ``root``/<class>/…, one class per subfolder (sorted), as (path, label) pairs."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        folder = Path(root)
        if not folder.is_dir():
            what = "not found" if not folder.exists() else "not a folder"
            raise UsageError(f"training folder '{os.fspath(root)}': {what}")
        self.root = folder
        self.classes: list[str] = []
        self.items: list[tuple[Path, int]] = []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            files = sorted(p for p in sub.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
            if files:
                self.items += [(f, len(self.classes)) for f in files]
                self.classes.append(sub.name)
        if len(self.classes) < 2:
            raise UsageError(f"training folder '{os.fspath(root)}' needs at least two subfolders of images, one "
                             f"per class (found {len(self.classes)})")

    def crop(self, i: int, size: int, g: torch.Generator) -> Tensor:
        """Image ``i`` as a random ``size``² crop (shorter side scaled to 8/7·size) with a random flip, (3, s, s)."""
        img = images.load_image(self.items[i][0])
        short = round(size * 8 / 7)
        w, h = img.size
        scale = short / min(w, h)
        img = images.resize_to(img, (max(size, round(w * scale)), max(size, round(h * scale))))
        top = int(torch.randint(0, img.height - size + 1, (1,), generator=g))
        left = int(torch.randint(0, img.width - size + 1, (1,), generator=g))
        t = images.to_tensor(img.crop((left, top, left + size, top + size)))[0]
        return t.flip(-1) if bool(torch.rand(1, generator=g) < 0.5) else t


@dataclass(frozen=True)
class TrainResult:
    checkpoints: tuple[Path, ...]
    losses: tuple[float, ...]  # mean training loss per epoch
    accuracy: tuple[float, ...]  # training accuracy per epoch
    stopped: bool
    seconds: float


class ZFTrainJob:
    """Checks the data, the output folder and the options (and with ``resume`` the saved state), then
    :meth:`run` trains and writes checkpoints."""

    def __init__(self, data: str | os.PathLike[str], output: str | os.PathLike[str], options: ZFTrainOptions,
                 device: torch.device | str = "cpu", *, resume: bool = False) -> None:
        self.data = ClassFolder(data)
        self.output = Path(output)
        if self.output.exists() and not self.output.is_dir():
            raise UsageError(f"output '{os.fspath(output)}' is a file; give a folder for the checkpoints")
        check_writable(self.output / "epoch_001.safetensors", what="checkpoint")
        self.options, self.device = options, torch.device(device)
        torch.manual_seed(options.seed)
        self.net = ZFNet(scaled(ZFNET, options.width), num_classes=len(self.data.classes),
                         hidden=(options.hidden, options.hidden), dropout=options.dropout).to(self.device)
        self.steps_per_epoch = -(-len(self.data.items) // options.batch_size)
        self.total = self.steps_per_epoch * options.epochs
        self.state_path = self.output / STATE_FILE
        self.resumed: dict[str, Any] | None = None
        if resume:
            self.resumed = checkpoint.load(self.state_path, self._identity(), fmt=STATE_FORMAT,
                                           what="ZFNet training")
            if int(self.resumed["epoch"]) >= options.epochs:
                raise UsageError(f"{self.state_path} has already trained {int(self.resumed['epoch'])} epochs; "
                                 f"give --epochs above that to train longer")
        self.first_epoch = 1 + (int(self.resumed["epoch"]) if self.resumed else 0)

    def _identity(self) -> dict[str, Any]:
        """What a resumed run must share with the saved one: the options (but the epoch counts) and the data."""
        kept = {k: v for k, v in self.options.to_dict().items() if k not in ("epochs", "checkpoint_every")}
        return {**kept, "classes": list(self.data.classes), "images": len(self.data.items)}

    def _save_state(self, net: ZFNet, opt: torch.optim.Optimizer, epoch: int, step: int, losses: list[float],
                    accuracy: list[float], seconds: float) -> None:
        checkpoint.save(self.state_path, {
            "options": checkpoint.identity(self._identity()), "epoch": epoch, "step": step,
            "net": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            "optimizer": opt.state_dict(), "rng": torch.get_rng_state(), "losses": list(losses),
            "accuracy": list(accuracy), "seconds": seconds}, fmt=STATE_FORMAT)

    def run(self, on_step: OnStep | None = None) -> TrainResult:
        o, net, start = self.options, self.net, time.perf_counter()
        net.renormalize_filters(o.radius)
        opt = torch.optim.SGD(net.parameters(), lr=o.lr, momentum=o.momentum)
        record = new_record("zfnet-train", self.device, options=o.to_dict(), data={
            "folder": self.data.root.name, "images": len(self.data.items), "classes": list(self.data.classes)})
        saved: list[Path] = []
        losses: list[float] = []
        accuracy: list[float] = []
        step, stopped, before = 0, False, 0.0
        if self.resumed is not None:
            net.load_state_dict(self.resumed["net"])
            opt.load_state_dict(self.resumed["optimizer"])
            torch.set_rng_state(self.resumed["rng"])
            losses, accuracy = list(self.resumed["losses"]), list(self.resumed["accuracy"])
            step, before = int(self.resumed["step"]), float(self.resumed["seconds"])
            start -= before
        for epoch in range(self.first_epoch, o.epochs + 1):
            g = torch.Generator().manual_seed(o.seed * 100003 + epoch)
            order = torch.randperm(len(self.data.items), generator=g).tolist()
            total_loss, correct = 0.0, 0
            net.train()
            for first in range(0, len(order), o.batch_size):
                ids = order[first : first + o.batch_size]
                x = torch.stack([self.data.crop(i, o.size, g) for i in ids]).to(self.device)
                y = torch.tensor([self.data.items[i][1] for i in ids], device=self.device)
                logits = net.classify(x)
                loss = F.cross_entropy(logits, y)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingError(f"the loss is {value} at epoch {epoch}; try a smaller --lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                net.renormalize_filters(o.radius)  # after every update, as the paper does
                total_loss += value * len(ids)
                correct += int((logits.argmax(1) == y).sum())
                step += 1
                event = StepEvent(step, self.total, {"loss": value}, time.perf_counter() - start)
                if on_step is not None and on_step(event):
                    stopped = True
                    break
            if stopped:  # the partial epoch's weights are kept as a checkpoint; the state stays at the last whole one
                losses.append(total_loss / max(1, first + len(ids)))
                accuracy.append(correct / max(1, first + len(ids)))
            else:
                losses.append(total_loss / len(order))
                accuracy.append(correct / len(order))
            if stopped or epoch % o.checkpoint_every == 0 or epoch == o.epochs:
                net.eval()
                record.update(epoch=epoch, loss=losses[-1], accuracy=accuracy[-1])
                saved.append(save_zfnet(net, self.output / f"epoch_{epoch:03d}.safetensors",
                                        tuple(self.data.classes), epoch, dict(record)))
            if not stopped:
                self._save_state(net, opt, epoch, step, losses, accuracy, time.perf_counter() - start)
            if stopped:
                break
        net.eval()
        return TrainResult(tuple(saved), tuple(losses), tuple(accuracy), stopped, time.perf_counter() - start)


class TrainingError(StylegramError):
    """Training cannot go on (a loss that is no longer finite)."""
