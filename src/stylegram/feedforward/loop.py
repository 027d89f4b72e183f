"""The one training loop of every feed-forward network, for any :class:`Task`: Adam over batches of photo
crops, with checkpoints, a CSV log, previews, resume and data parallelism.

A task says how to make (network input, target) pairs from a batch of crops, which loss to minimise, and how
to describe the trained network in its model file; :mod:`.train` (style) and :mod:`.superres`
(super-resolution) are the two there are.

Runs are repeatable: the crops of iteration i depend only on (seed, i, rank), never on a running random state, so
training N iterations straight gives the same weights as N/2, a checkpoint, and a resume for N/2. Under
``torch.distributed`` (e.g. ``torchrun``) each rank takes different crops, gradients are averaged by
DistributedDataParallel, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from stylegram.core import images
from stylegram.core.atomic import check_writable
from stylegram.core.errors import OptionsError, StylegramError, UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.options import Options, option
from stylegram.feedforward.architectures import MAX_WIDTH
from stylegram.feedforward.data import IterationBatches, TrainingImages
from stylegram.feedforward.model import ModelInfo, save_model
from stylegram.nets.vgg import VGG

KEEP_CHECKPOINTS = 2


class TrainError(StylegramError):
    """Training cannot start or resume: bad options, no readable photos, no checkpoint to resume from."""


class TrainOptionsError(OptionsError, TrainError):
    """A training option out of range, not finite, or not one of its choices."""


@dataclass(frozen=True)
class LoopOptions(Options):
    """The options every training run has, whatever its task."""

    data: str = option("", "folder of training photos, searched recursively (JPEG, PNG, WebP)")
    output: str = option("", "model file to write (.safetensors); checkpoints, log and previews go to OUTPUT.train/")
    iterations: int = option(40000, "training iterations (batches)", min=1)
    batch_size: int = option(4, "photos per iteration (per process when distributed)", min=1, max=4096)
    image_size: int = option(256, "side of the square random crops, in pixels", min=16, max=8192)
    lr: float = option(1e-3, "Adam learning rate", above=0)
    warmup: int = option(0, "iterations over which the learning rate rises linearly from 0 to --lr (0: none)", min=0)
    workers: int = option(2, "processes that decode photos while the network trains (0: decode in the main one)",
                          min=0, max=256)
    checkpoint_every: int = option(1000, "write a checkpoint, the log and a preview every N iterations", min=1)
    seed: int = option(0, "random seed: same seed, same machine, same weights")
    width: float = option(1.0, "channel width multiplier of the network (0.5 is ~4x fewer parameters)", above=0,
                          max=MAX_WIDTH)
    model: str = option("vgg16-caffe", "VGG weights id for the loss network")
    pooling: Literal["avg", "max"] = option("max", "pooling in the loss network")
    previews: int = option(4, "validation photos shown in the preview at each checkpoint", min=0, max=64)
    resume: bool = option(False, "continue from the latest checkpoint in OUTPUT.train/")

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except OptionsError as e:  # one class that is both: `except TrainError` and `except OptionsError` work
            raise TrainOptionsError(str(e)) from None

    @property
    def workdir(self) -> Path:
        return Path(self.output + ".train")


class Task(Protocol):
    """What one kind of training needs from the loop, and what the loop needs from it."""

    method: str  # recorded in previews: "johnson", "johnson-superres"
    terms: tuple[str, ...]  # the loss terms :meth:`loss` returns besides "total", in log order
    needs_vgg: bool  # whether the loss looks through the VGG loss network (a pixel loss does not)

    def photos(self) -> TrainingImages: ...

    def network(self) -> nn.Module: ...

    def prepare(self, vgg: VGG | None, device: torch.device) -> None:
        """Everything computed once before the first iteration (e.g. the style image's Gram matrices)."""

    def pairs(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """(network input, target) from a batch of photo crops (B, 3, S, S) in [0, 1]."""

    def loss(self, vgg: VGG | None, y: Tensor, x: Tensor, target: Tensor) -> dict[str, Tensor]:
        """The weighted terms and their ``total`` for network output ``y`` on input ``x``."""

    def info(self, net: nn.Module, iterations: int, losses: dict[str, float], photos: TrainingImages) -> ModelInfo:
        """The record of the trained network for its model file."""


@dataclass(frozen=True)
class TrainResult:
    net: nn.Module
    iterations: int  # the last iteration done (counting those before a resume)
    losses: dict[str, float]
    skipped: int  # photos that could not be read
    photos: int  # photos that could
    elapsed: float  # seconds of this run (not counting before a resume)
    stopped: bool  # ended early because on_step asked to


def fit(task: Task, options: LoopOptions, on_step: OnStep | None, vgg: VGG | None, dev: torch.device,
        inputs: Sequence[str] = ()) -> TrainResult:
    """Train ``task``'s network; write it to ``options.output`` (rank 0), with checkpoints, a CSV log and previews
    in ``options.workdir``. ``vgg`` replaces the loss network that ``options.model`` names (tests pass a random
    one). Outputs are checked (and ``inputs`` protected) before any work."""
    rank, world = _rank_and_world()
    check_outputs(options, inputs)
    data = task.photos()
    if vgg is None and task.needs_vgg:
        from stylegram.weights import load_vgg

        vgg, _ = load_vgg(options.model, pooling=options.pooling, device=dev)
    if vgg is not None:
        vgg = vgg.to(dev).freeze()
    task.prepare(vgg, dev)
    torch.manual_seed(options.seed)  # the network's initial weights
    net = task.network().to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=options.lr)
    start, log = _resume(options, net, opt, dev) if options.resume else (0, [])
    if start >= options.iterations:
        raise TrainError(f"the latest checkpoint is at iteration {start}; ask for more --iterations to continue")
    model: nn.Module = net
    if world > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    previews = data.previews(options.previews).to(dev) if rank == 0 and options.previews else None
    files = _Files(task, options, previews)

    t0, stopped, terms = time.perf_counter(), False, {}
    for it, (cpu_x, bad) in zip(range(start + 1, options.iterations + 1), _loader(data, options, start, rank, world,
                                                                                  dev), strict=True):
        data.bad.update(bad)
        x, target = task.pairs(cpu_x.to(dev, non_blocking=True))
        if options.warmup:
            for group in opt.param_groups:
                group["lr"] = options.lr * min(1.0, it / options.warmup)  # from the iteration alone: resumable
        opt.zero_grad(set_to_none=True)
        y = model(x)
        loss_terms = task.loss(vgg, y, x, target)
        loss_terms["total"].backward()  # type: ignore[no-untyped-call]
        opt.step()
        terms = _mean_over_ranks(loss_terms, world)
        elapsed = time.perf_counter() - t0
        log.append([float(it), *(terms[k] for k in (*task.terms, "total")), elapsed])
        event = StepEvent(it, options.iterations, terms, elapsed, render=lambda: files.render(net))
        stopped = _agree(bool(on_step(event)) if on_step else False, world, dev)
        if rank == 0 and (it % options.checkpoint_every == 0 or it == options.iterations or stopped):
            files.checkpoint(net, opt, it, log)
        if stopped:
            break
    last = int(log[-1][0]) if log else start
    if rank == 0:
        save_model(net, options.output, task.info(net, last, terms, data))
    return TrainResult(net, last, terms, data.skipped, data.readable, time.perf_counter() - t0, stopped)


def check_outputs(o: LoopOptions, inputs: Sequence[str]) -> None:
    """Refuse, before any work, a run whose model, checkpoints or log could not be written, or that has nothing
    to resume; ``inputs`` (e.g. the style image) are never overwritten."""
    if not o.output:
        raise TrainError("no output model file given")
    check_writable(o.output, inputs, "model")
    if o.workdir.exists() and not o.workdir.is_dir():
        raise UsageError(f"cannot write checkpoints to '{o.workdir}': it is a file, not a folder")
    check_writable(o.workdir / "log.csv", inputs, "training log")
    if o.resume and latest_checkpoint(o.workdir) is None:
        raise TrainError(f"nothing to resume: no checkpoint in {o.workdir}")


def _loader(data: TrainingImages, o: LoopOptions, start: int, rank: int, world: int,
            dev: torch.device) -> Iterable[tuple[Tensor, list[int]]]:
    """The batches of iterations start+1 … o.iterations, decoded ahead by ``o.workers`` processes."""
    from torch.utils.data import DataLoader

    batches = IterationBatches(data, o.seed, rank, world, o.batch_size)
    return DataLoader(batches, batch_size=None, sampler=range(start + 1, o.iterations + 1), num_workers=o.workers,
                      pin_memory=dev.type == "cuda", prefetch_factor=4 if o.workers else None)


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_over_ranks(terms: dict[str, Tensor], world: int) -> dict[str, float]:
    values = torch.stack([t.detach().float() for t in terms.values()])
    if world > 1:  # for the log only: every rank's gradient step is already the same
        dist.all_reduce(values)
        values /= world
    return dict(zip(terms, values.tolist(), strict=True))


def _agree(stop: bool, world: int, dev: torch.device) -> bool:
    """Whether any rank asked to stop; all ranks must leave the loop together or the collectives hang."""
    if world == 1:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=dev)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


# --------------------------------------------------------------------------------------------- files


class _Files:
    """What rank 0 writes during a run: checkpoints, the CSV log and previews, all atomically."""

    def __init__(self, task: Task, o: LoopOptions, previews: Tensor | None) -> None:
        self.task, self.o, self.previews = task, o, previews
        self.columns = ("iteration", *task.terms, "total", "seconds")

    def render(self, net: nn.Module) -> Tensor:
        """A (1, 3, 2h, n·w) grid: the validation targets on top, the network's outputs below."""
        if self.previews is None:
            raise RuntimeError("no validation photos on this rank")
        x, target = self.task.pairs(self.previews)
        was_training = net.training
        net.eval()  # batch norm (super-resolution) then uses its running statistics, as inference will
        try:
            with torch.no_grad():
                y = net(x)
        finally:
            net.train(was_training)
        top, bottom = torch.cat(list(target), dim=2), torch.cat(list(y), dim=2)
        return torch.cat([top, bottom], dim=1).unsqueeze(0).cpu()

    def checkpoint(self, net: nn.Module, opt: torch.optim.Optimizer, it: int, log: list[list[float]]) -> None:
        o = self.o
        state = {
            "iteration": it,
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "log": torch.tensor(log, dtype=torch.float64),
            "options": _comparable(o),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = images.atomic_write_bytes(_checkpoint_path(o.workdir, it), buffer.getvalue())
        self._write_log(log)
        if self.previews is not None:
            meta = {"method": self.task.method, "iteration": it, "options": o.to_dict()}
            images.save_image(images.to_pil(self.render(net)), o.workdir / f"preview-{it:07d}.png", meta)
        for old in sorted(o.workdir.glob("checkpoint-*.pt"))[:-KEEP_CHECKPOINTS]:
            if old != path:
                old.unlink(missing_ok=True)

    def _write_log(self, log: list[list[float]]) -> None:
        # Rewritten whole (atomically) at each checkpoint rather than appended: a crash never leaves a torn row,
        # and after a resume the log holds exactly the iterations the weights have seen.
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(self.columns)
        for row in log:
            writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:-1]), f"{row[-1]:.3f}"])
        images.atomic_write_text(self.o.workdir / "log.csv", text.getvalue())


def _checkpoint_path(workdir: Path, it: int) -> Path:
    return workdir / f"checkpoint-{it:07d}.pt"


def latest_checkpoint(workdir: Path) -> Path | None:
    found = sorted(workdir.glob("checkpoint-*.pt")) if workdir.is_dir() else []
    return found[-1] if found else None


def _comparable(o: LoopOptions) -> dict[str, Any]:
    """The options that must not change across a resume (the run length and file cadence may)."""
    skip = {"iterations", "checkpoint_every", "resume", "previews", "output", "data", "workers"}
    return {k: v for k, v in o.to_dict().items() if k not in skip}


def _resume(o: LoopOptions, net: nn.Module, opt: torch.optim.Optimizer,
            dev: torch.device) -> tuple[int, list[list[float]]]:
    path = latest_checkpoint(o.workdir)
    if path is None:
        raise TrainError(f"nothing to resume: no checkpoint in {o.workdir}")
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
    except Exception as e:  # a damaged file: unpickling errors vary by how it is damaged
        raise TrainError(f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else e!r}") from None
    saved, now = state.get("options", {}), _comparable(o)
    changed = sorted(k for k in now if saved.get(k) != now[k])
    if changed:
        raise TrainError(f"cannot resume {path.name}: option(s) {', '.join(changed)} differ from the checkpoint's")
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].cpu())
    return int(state["iteration"]), [list(map(float, row)) for row in state["log"].tolist()]
