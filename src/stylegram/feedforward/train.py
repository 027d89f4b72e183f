"""Training a Johnson et al. (2016) transform network for one style, on any folder of photos.

Each iteration takes a batch of random square crops of the photos, stylises them with the transform network and
minimises a perceptual loss measured by a frozen VGG16:

    L = λ_c · Σ_content-layers ‖φ(y) − φ(x)‖² / (C·H·W)
      + λ_s · Σ_style-layers ‖G(φ(y)) − G(φ(s))‖²_F,  G = F Fᵀ / (C·H·W)
      + λ_tv · TV(y)

averaged over the batch, as in the paper's equations 2 and 3 (features of the 0–255 Caffe-normalised input).
Departures from the paper: the crops are random crops of the photos rather than 256×256 resizes of COCO, and the
loss is written with the pure functions of :mod:`stylegram.losses` (a comment in :func:`perceptual_loss` shows
the conversion).

Runs are repeatable: the crops of iteration i depend only on (seed, i, rank), never on a running random state, so
training N iterations straight gives the same weights as N/2, a checkpoint, and a resume for N/2. Under
``torch.distributed`` (e.g. ``torchrun``) each rank takes different crops, gradients are averaged by
DistributedDataParallel, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from stylegram.core import images
from stylegram.core.atomic import check_writable
from stylegram.core.device import resolve_device
from stylegram.core.errors import OptionsError, StylegramError, UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.options import Options, option
from stylegram.feedforward.architectures import MAX_WIDTH
from stylegram.feedforward.data import IterationBatches, TrainingImages
from stylegram.feedforward.model import ModelInfo, save_model
from stylegram.losses import functional as losses
from stylegram.nets.transformer import TransformerNet
from stylegram.nets.vgg import VGG, layer_names

JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
JOHNSON_CONTENT_LAYERS = ("relu2_2",)
LOG_COLUMNS = ("iteration", "content", "style", "tv", "total", "seconds")
KEEP_CHECKPOINTS = 2


class TrainError(StylegramError):
    """Training cannot start or resume: bad options, no readable photos, no checkpoint to resume from."""


class TrainOptionsError(OptionsError, TrainError):
    """A training option out of range, not finite, or not one of its choices."""


@dataclass(frozen=True)
class TrainOptions(Options):
    """Every option of training a style network, with its default, help text and bounds."""

    style: str = option("", "the style image (painting)")
    data: str = option("", "folder of training photos, searched recursively (JPEG, PNG, WebP)")
    output: str = option("", "model file to write (.safetensors); checkpoints, log and previews go to OUTPUT.train/")
    iterations: int = option(40000, "training iterations (batches); the paper's 2 epochs of COCO are 40000", min=1)
    batch_size: int = option(4, "photos per iteration (per process when distributed)", min=1, max=4096)
    image_size: int = option(256, "side of the square random crops, in pixels", min=16, max=8192)
    style_size: int = option(512, "longest side of the style image, in pixels", min=16, max=8192)
    content_weight: float = option(1.0, "λ_c: weight of the content (feature reconstruction) loss", min=0)
    # Defaults from a sweep (1000 iterations, batch 4, 256 px, on skimage photos): λ_s = 3e-5 keeps the photo
    # nearly intact, 1e-4 gives a clear style with recognisable content, 3e-4 and above wash the content out.
    # λ_tv = 0.5 is Johnson's 1e-5 for 0–255 pixels rescaled to [0, 1] pixels (×255² ≈ 0.65), a gentle prior.
    style_weight: float = option(1e-4, "λ_s: weight of the style (Gram) loss; higher = more style", min=0)
    tv_weight: float = option(0.5, "λ_tv: weight of the total-variation smoothness term", min=0)
    lr: float = option(1e-3, "Adam learning rate", above=0)
    workers: int = option(2, "processes that decode photos while the network trains (0: decode in the main one)",
                          min=0, max=256)
    checkpoint_every: int = option(1000, "write a checkpoint, the log and a preview every N iterations", min=1)
    seed: int = option(0, "random seed: same seed, same machine, same weights")
    width: float = option(1.0, "channel width multiplier of the network (0.5 is ~4x fewer parameters)", above=0,
                          max=MAX_WIDTH)
    content_layers: tuple[str, ...] = option(JOHNSON_CONTENT_LAYERS, "VGG16 layers for the content loss")
    style_layers: tuple[str, ...] = option(JOHNSON_STYLE_LAYERS, "VGG16 layers for the style loss")
    model: str = option("vgg16-caffe", "VGG weights id for the loss network")
    pooling: Literal["avg", "max"] = option("max", "pooling in the loss network")
    previews: int = option(4, "validation photos stylised into the preview at each checkpoint", min=0, max=64)
    resume: bool = option(False, "continue from the latest checkpoint in OUTPUT.train/")

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except OptionsError as e:  # one class that is both: `except TrainError` and `except OptionsError` work
            raise TrainOptionsError(str(e)) from None

    def problems(self) -> Iterator[str]:
        known = set(layer_names("vgg16"))
        for layer in (*self.content_layers, *self.style_layers):
            if layer not in known:
                yield f"VGG16 has no layer {layer!r}"
        if not self.style_layers and not self.content_layers:
            yield "need at least one content or style layer"

    @property
    def workdir(self) -> Path:
        return Path(self.output + ".train")


@dataclass(frozen=True)
class TrainResult:
    net: TransformerNet
    iterations: int  # the last iteration done (counting those before a resume)
    losses: dict[str, float]
    skipped: int  # photos that could not be read
    photos: int  # photos that could
    elapsed: float  # seconds of this run (not counting before a resume)
    stopped: bool  # ended early because on_step asked to


# --------------------------------------------------------------------------------------------- the loss


@dataclass(frozen=True)
class LossTargets:
    style_grams: dict[str, Tensor]  # layer -> (1, C, C) Gram of the style image, normalised by H·W


def style_targets(vgg: VGG, style: Tensor, layers: Sequence[str]) -> LossTargets:
    """Gram matrices of the style image (1, 3, h, w) at ``layers``."""
    with torch.no_grad():
        feats = vgg(style, layers)
        return LossTargets({k: losses.gram_matrix(feats[k]) for k in layers})


def perceptual_loss(vgg: VGG, y: Tensor, x: Tensor, targets: LossTargets, o: TrainOptions) -> dict[str, Tensor]:
    """The weighted terms and their sum for stylised ``y`` and photos ``x``, both (B, 3, H, W); batch means.

    In terms of :mod:`stylegram.losses`: content_loss is ½‖F − P‖², so the paper's ‖F − P‖²/(CHW) is
    2·content_loss/numel; gram_matrix divides by M = H·W and style_layer_loss by 4C², so the paper's
    ‖G/(CHW) − A/(CHW)‖² = ‖Ĝ − Â‖²/C² is 4·style_layer_loss. Sums over the batch are divided by B.
    """
    b = y.shape[0]
    layers = list(dict.fromkeys((*o.content_layers, *o.style_layers)))
    fy = vgg(y, layers)
    zero = y.new_zeros(())
    content = zero
    if o.content_layers:
        with torch.no_grad():
            fx = vgg(x, o.content_layers)
        for layer in o.content_layers:
            content = content + 2.0 * losses.content_loss(fy[layer], fx[layer]) / fy[layer].numel()
    style = zero
    for layer in o.style_layers:
        style = style + 4.0 * losses.style_layer_loss(losses.gram_matrix(fy[layer]), targets.style_grams[layer]) / b
    tv = losses.total_variation(y) / b if o.tv_weight else zero
    terms = {"content": o.content_weight * content, "style": o.style_weight * style, "tv": o.tv_weight * tv}
    terms["total"] = terms["content"] + terms["style"] + terms["tv"]
    return terms


# --------------------------------------------------------------------------------------------- the loop


def train(options: TrainOptions, on_step: OnStep | None = None, *, vgg: VGG | None = None,
          device: torch.device | str | None = None) -> TrainResult:
    """Train a transform network on ``options.data`` for the style ``options.style``; write it to
    ``options.output`` (rank 0), with checkpoints, a CSV log and previews in ``options.workdir``.

    ``vgg`` replaces the loss network that ``options.model`` names (tests pass a random one). When
    ``torch.distributed`` is initialised, this process is one rank of a data-parallel run.
    """
    rank, world = _rank_and_world()
    dev = resolve_device(device)
    check_outputs(options, [options.style])
    if not options.style:
        raise TrainError("no style image given")
    if not os.path.isfile(options.style):
        raise TrainError(f"style image not found: {options.style}")
    data = TrainingImages(options.data, options.image_size)
    style = _load_style(options)
    if vgg is None:
        from stylegram.weights import load_vgg

        vgg, _ = load_vgg(options.model, pooling=options.pooling, device=dev)
    vgg = vgg.to(dev).freeze()
    targets = style_targets(vgg, style.to(dev), options.style_layers)

    torch.manual_seed(options.seed)  # the network's initial weights
    net = TransformerNet(options.width).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=options.lr)
    start, log = _resume(options, net, opt, dev) if options.resume else (0, [])
    if start >= options.iterations:
        raise TrainError(f"the latest checkpoint is at iteration {start}; ask for more --iterations to continue")
    model: nn.Module = net
    if world > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    previews = data.previews(options.previews).to(dev) if rank == 0 and options.previews else None

    t0, stopped, terms = time.perf_counter(), False, {}
    batches = _loader(data, options, start, rank, world, dev)
    for it, (cpu_x, bad) in zip(range(start + 1, options.iterations + 1), batches, strict=True):
        data.bad.update(bad)
        x = cpu_x.to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        y = model(x)
        loss_terms = perceptual_loss(vgg, y, x, targets, options)
        loss_terms["total"].backward()  # type: ignore[no-untyped-call]
        opt.step()
        terms = _mean_over_ranks(loss_terms, world)
        elapsed = time.perf_counter() - t0
        log.append([float(it), terms["content"], terms["style"], terms["tv"], terms["total"], elapsed])
        event = StepEvent(it, options.iterations, terms, elapsed, render=lambda: _render(net, previews))
        stopped = _agree(bool(on_step(event)) if on_step else False, world, dev)
        if rank == 0 and (it % options.checkpoint_every == 0 or it == options.iterations or stopped):
            _write_checkpoint(options, net, opt, it, log, previews)
        if stopped:
            break
    last = int(log[-1][0]) if log else start
    if rank == 0:
        _write_model(options, net, last, terms, data)
    return TrainResult(net, last, terms, data.skipped, data.readable, time.perf_counter() - t0, stopped)


def _loader(data: TrainingImages, o: TrainOptions, start: int, rank: int, world: int,
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


def check_outputs(o: TrainOptions, inputs: Sequence[str]) -> None:
    """Refuse, before any work, a run whose model, checkpoints or log could not be written, or that has nothing
    to resume; ``inputs`` (the style image) are never overwritten."""
    if not o.output:
        raise TrainError("no output model file given")
    check_writable(o.output, inputs, "model")
    if o.workdir.exists() and not o.workdir.is_dir():
        raise UsageError(f"cannot write checkpoints to '{o.workdir}': it is a file, not a folder")
    check_writable(o.workdir / "log.csv", inputs, "training log")
    if o.resume and latest_checkpoint(o.workdir) is None:
        raise TrainError(f"nothing to resume: no checkpoint in {o.workdir}")


def _load_style(o: TrainOptions) -> Tensor:
    return images.to_tensor(images.resize_longest(images.load_image(o.style), o.style_size))


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


def _render(net: TransformerNet, previews: Tensor | None) -> Tensor:
    """A (1, 3, 2h, n·w) grid: the validation photos on top, their stylisations below."""
    if previews is None:
        raise RuntimeError("no validation photos on this rank")
    with torch.no_grad():
        y = net(previews)  # instance norm has no running statistics: eval and train modes agree
    top, bottom = torch.cat(list(previews), dim=2), torch.cat(list(y), dim=2)
    return torch.cat([top, bottom], dim=1).unsqueeze(0).cpu()


# --------------------------------------------------------------------------------------------- files


def _checkpoint_path(workdir: Path, it: int) -> Path:
    return workdir / f"checkpoint-{it:07d}.pt"


def latest_checkpoint(workdir: Path) -> Path | None:
    found = sorted(workdir.glob("checkpoint-*.pt")) if workdir.is_dir() else []
    return found[-1] if found else None


def _write_checkpoint(o: TrainOptions, net: TransformerNet, opt: torch.optim.Optimizer, it: int,
                      log: list[list[float]], previews: Tensor | None) -> None:
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
    _write_log(o.workdir / "log.csv", log)
    if previews is not None:
        meta = {"method": "johnson", "iteration": it, "options": o.to_dict()}
        images.save_image(images.to_pil(_render(net, previews)), o.workdir / f"preview-{it:07d}.png", meta)
    for old in sorted(o.workdir.glob("checkpoint-*.pt"))[:-KEEP_CHECKPOINTS]:
        if old != path:
            old.unlink(missing_ok=True)


def _write_log(path: Path, log: list[list[float]]) -> None:
    # Rewritten whole (atomically) at each checkpoint rather than appended: a crash never leaves a torn row,
    # and after a resume the log holds exactly the iterations the weights have seen.
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    for row in log:
        writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:5]), f"{row[5]:.3f}"])
    images.atomic_write_text(path, text.getvalue())


def _comparable(o: TrainOptions) -> dict[str, Any]:
    """The options that must not change across a resume (the run length and file cadence may)."""
    skip = {"iterations", "checkpoint_every", "resume", "previews", "output", "data", "workers"}
    return {k: v for k, v in o.to_dict().items() if k not in skip}


def _resume(o: TrainOptions, net: TransformerNet, opt: torch.optim.Optimizer,
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


def _write_model(o: TrainOptions, net: TransformerNet, it: int, terms: dict[str, float],
                 data: TrainingImages) -> None:
    from stylegram import __version__

    info = ModelInfo(
        width=net.width, style_image=os.path.basename(o.style), style_size=o.style_size,
        content_weight=o.content_weight, style_weight=o.style_weight, tv_weight=o.tv_weight,
        vgg_weights=o.model, iterations=it, stylegram_version=__version__,
        extra={"options": o.to_dict(), "losses": terms, "photos": data.readable, "skipped": data.skipped,
               "torch": torch.__version__},
    )
    save_model(net, o.output, info)
