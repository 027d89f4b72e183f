"""``stylegram train``, ``apply`` and ``export``: feed-forward networks (Johnson et al.) from the command line.

Parsing, progress and exit codes only: the work is :func:`stylegram.feedforward.train.train`,
:class:`stylegram.feedforward.apply.ApplyJob` and :func:`stylegram.feedforward.export.export_onnx`. Their flags
are derived from the option dataclasses; every user error is a StylegramError, which ``main`` turns into one
line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from stylegram.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Progress,
    StopOnInterrupt,
    add_option_flags,
    options_from,
    say,
)
from stylegram.core.errors import OptionsError
from stylegram.core.events import StepEvent
from stylegram.core.options import Options, describe
from stylegram.feedforward.apply import ApplyOptions
from stylegram.feedforward.export import ExportOptions
from stylegram.feedforward.superres import SuperResOptions
from stylegram.feedforward.train import TrainOptions

_DEVICE_HELP = "cpu, cuda, cuda:1 … (default: this process's GPU when there is one, else the CPU)"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the ``stylegram`` parser."""
    t = sub.add_parser("train", help="train a feed-forward style network (Johnson et al.) on a folder of photos",
                       description="Train a transform network so that one forward pass stylises a photo like "
                                   "PAINTING. Runs data-parallel under torchrun.")
    t.add_argument("--style", required=True, metavar="PAINTING", help="the style image")
    t.add_argument("--data", required=True, metavar="FOLDER",
                   help="folder of training photos, searched recursively (JPEG, PNG, WebP)")
    t.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="model file to write (.safetensors); checkpoints, log.csv and previews go to MODEL.train/")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in MODEL.train/")
    add_option_flags(t, TrainOptions, skip=("style", "data", "output", "resume"))
    _add_common(t)
    t.set_defaults(func=cmd_train)

    a = sub.add_parser("apply", help="stylise images, folders of images, or videos with a trained model",
                       description="Apply MODEL (from `stylegram train`) to each INPUT. One image or video in "
                                   "and OUT with an extension: OUT is that file; otherwise OUT is a folder.")
    a.add_argument("model", metavar="MODEL", help="model file (.safetensors; .onnx with --backend onnxruntime)")
    a.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders of images, or video files")
    a.add_argument("-o", "--output", required=True, metavar="OUT", help="output file or folder")
    add_option_flags(a, ApplyOptions)
    _add_common(a)
    a.set_defaults(func=cmd_apply)

    r = sub.add_parser("train-sr", help="train a super-resolution network (Johnson et al.) on a folder of photos",
                       description="Train a ×4 or ×8 super-resolution network on crops of the photos in FOLDER, "
                                   "degraded by a Gaussian blur and bicubic downsampling. Runs data-parallel under "
                                   "torchrun.")
    r.add_argument("--data", required=True, metavar="FOLDER",
                   help="folder of training photos, searched recursively (JPEG, PNG, WebP)")
    r.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="model file to write (.safetensors); checkpoints, log.csv and previews go to MODEL.train/")
    r.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in MODEL.train/")
    add_option_flags(r, SuperResOptions, skip=("data", "output", "resume"))
    _add_common(r)
    r.set_defaults(func=cmd_train_sr)

    u = sub.add_parser("upscale", help="enlarge images, folders of images, or videos with a super-resolution model",
                       description="Super-resolve each INPUT with MODEL (from `stylegram train-sr`). One image or "
                                   "video in and OUT with an extension: OUT is that file; otherwise OUT is a folder.")
    u.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders of images, or video files")
    u.add_argument("-o", "--output", required=True, metavar="OUT", help="output file or folder")
    u.add_argument("--model", required=True, metavar="MODEL", help="super-resolution model file (.safetensors; "
                   ".onnx with --backend onnxruntime)")
    add_option_flags(u, ApplyOptions, skip=("original_colors",))
    _add_common(u)
    u.set_defaults(func=cmd_upscale)

    e = sub.add_parser("export", help="export a trained model to ONNX (dynamic height and width)")
    e.add_argument("model", metavar="MODEL", help="model file (.safetensors)")
    e.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    add_option_flags(e, ExportOptions)
    e.set_defaults(func=cmd_export)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress display")


def flagged_options(ns: argparse.Namespace, base: Options) -> Any:
    """:func:`options_from`, with each option named in an error message by the flag the user typed."""
    try:
        return options_from(ns, base)
    except OptionsError as e:
        names = "|".join(re.escape(f.name.replace("_", "-")) for f in describe(type(base)))
        raise OptionsError(re.sub(rf"(^|; )({names}) ", r"\1--\2 ", str(e))) from None


# --------------------------------------------------------------------------------------------- train


def cmd_train(ns: argparse.Namespace) -> int:
    from stylegram.feedforward.train import train

    return _train(ns, flagged_options(ns, TrainOptions()), train)


def cmd_train_sr(ns: argparse.Namespace) -> int:
    from stylegram.feedforward.superres import train_superres

    return _train(ns, flagged_options(ns, SuperResOptions()), train_superres)


def _train(ns: argparse.Namespace, options: Any, train: Any) -> int:
    """Either training (style or super-resolution): one process per rank under torchrun, progress, exit code."""
    import torch
    import torch.distributed as dist

    from stylegram.core.device import resolve_device

    device = resolve_device(ns.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started_group = False
    if world > 1 and not dist.is_initialized():  # launched by torchrun: one process per rank
        dist.init_process_group("nccl" if device.type == "cuda" and torch.cuda.is_available() else "gloo")
        started_group = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    display = _TrainDisplay(ns.quiet or rank != 0, options.batch_size * world)
    try:
        with StopOnInterrupt() as stopper:
            result = train(options, on_step=lambda e: display.step(e) or stopper.requested, device=device)
    finally:
        display.close()
        if started_group:
            dist.destroy_process_group()
    if rank == 0:
        skipped = f", skipped {result.skipped} unreadable file(s)" if result.skipped else ""
        say(ns, f"wrote {options.output} after {result.iterations} iterations in {result.elapsed:.1f} s "
                f"({result.photos} photos{skipped})", force=True)
    if result.stopped:
        if rank == 0:
            say(ns, f"interrupted; resume with the same command and --resume (checkpoint in {options.workdir})",
                force=True)
        return EXIT_INTERRUPTED
    return EXIT_OK


class _TrainDisplay:
    """The progress display of training: the loss terms, iterations and images per second."""

    def __init__(self, quiet: bool, images_per_iteration: int) -> None:
        self.quiet, self.per_iteration = quiet, images_per_iteration
        self.progress: Progress | None = None
        self.first = 0

    def step(self, event: StepEvent) -> bool:
        if self.progress is None:  # made at the first event: a resumed run starts where its checkpoint left off
            self.first = event.iteration - 1
            self.progress = Progress(event.total, initial=self.first, quiet=self.quiet)
        rate = (event.iteration - self.first) / max(event.elapsed, 1e-9)
        shown = {k: v for k, v in event.losses.items() if k != "total"}
        self.progress.update(1, **shown, **{"it/s": f"{rate:.2f}", "img/s": f"{rate * self.per_iteration:.1f}"})
        return False

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


# --------------------------------------------------------------------------------------------- apply


def cmd_apply(ns: argparse.Namespace) -> int:
    return _apply(ns, None)


def cmd_upscale(ns: argparse.Namespace) -> int:
    return _apply(ns, "superres")


def _apply(ns: argparse.Namespace, task: str | None) -> int:
    from stylegram.core.errors import UsageError
    from stylegram.feedforward.apply import ApplyJob

    job = ApplyJob(ns.model, ns.inputs, ns.output, flagged_options(ns, ApplyOptions()), device=ns.device)
    if task is not None and job.info.task != task:
        raise UsageError(f"{ns.model} is a {job.info.task} model; `upscale` needs a super-resolution model")
    stills = sum(1 for item in job.items if not item.video)
    bars: dict[int, Progress] = {0: Progress(stills, unit="img", quiet=ns.quiet or stills == 0)}

    def step(event: StepEvent) -> bool:
        if event.stage not in bars:  # the next video: its own display, in frames
            bars[event.stage] = Progress(event.total or None, unit="frame", quiet=ns.quiet,
                                         label=job.items[stills + event.stage - 1].source.name)
        bar = bars[event.stage]
        if event.total and bar.total != event.total:
            bar.set_total(event.total)
        bar.update(event.iteration - bar.n)
        return stopper.requested

    with StopOnInterrupt() as stopper:
        try:
            result = job.run(on_step=step)
        finally:
            for bar in bars.values():
                bar.close()
    for target, video in result.videos:
        say(ns, f"wrote {target}: {video.frames} frames at {float(video.rate):g} fps, {video.size[0]}×"
                f"{video.size[1]}, {video.codec}" + (", audio copied" if video.audio else ""))
    for name, why in result.skipped:
        say(ns, f"stylegram: skipped {name}: {why}", force=True)
    if result.images:
        where = job.items[0].target if job.single else ns.output
        say(ns, f"wrote {result.images} image(s) to {where}")
    if result.stopped:
        say(ns, "interrupted; the outputs written so far are complete", force=True)
        return EXIT_INTERRUPTED
    return EXIT_OK


# --------------------------------------------------------------------------------------------- export


def cmd_export(ns: argparse.Namespace) -> int:
    from stylegram.core.atomic import check_writable
    from stylegram.feedforward.export import export_onnx
    from stylegram.feedforward.model import load_model

    options: ExportOptions = flagged_options(ns, ExportOptions())
    check_writable(ns.onnx, [ns.model], "ONNX file")  # before the model is even read
    model = load_model(ns.model)
    report = export_onnx(model, ns.onnx, opset=options.opset, inputs=[ns.model])
    say(ns, f"wrote {ns.onnx} (onnxruntime matches PyTorch within {report.max_abs_diff:.1e} on a "
            f"{report.checked[1]}×{report.checked[0]} test image)", force=True)
    return EXIT_OK
