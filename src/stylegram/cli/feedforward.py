"""``stylegram train``, ``apply``, ``export``, ``train-sr``, ``upscale``, ``eval-sr`` and ``sr-data``: feed-forward
networks (Johnson et al.) from the command line.

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
from stylegram.feedforward.evaluate import EvalOptions, EvalReport
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
    u.add_argument("--model", default=None, metavar="MODEL", help="super-resolution model: a file (.safetensors; "
                   ".onnx with --backend onnxruntime) or the name of a shipped one (default: the shipped ×4 model, "
                   "when this build has one)")
    add_option_flags(u, ApplyOptions, skip=("original_colors",))
    _add_common(u)
    u.set_defaults(func=cmd_upscale)

    _register_superres_tools(sub)

    e = sub.add_parser("export", help="export a trained model to ONNX (dynamic height and width)")
    e.add_argument("model", metavar="MODEL", help="model file (.safetensors)")
    e.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    add_option_flags(e, ExportOptions)
    e.set_defaults(func=cmd_export)


def _register_superres_tools(sub: argparse._SubParsersAction[Any]) -> None:
    v = sub.add_parser("eval-sr", help="score super-resolution models against bicubic (PSNR-Y, SSIM-Y, features)",
                       description="Score each MODEL (a file, a shipped model's name, or `bicubic`) and bicubic "
                                   "upsampling on the held-out photos, or on FOLDER: a folder of high-resolution "
                                   "images, or HR/ with LR_bicubic/X4/ (Set5, Set14, BSD100 …). PSNR and SSIM on "
                                   "the BT.601 Y channel with `scale` pixels of border cropped, RGB PSNR, and the "
                                   "VGG16 relu2_2 feature distance.")
    v.add_argument("models", nargs="+", metavar="MODEL", help="model files, shipped model names, or bicubic")
    v.add_argument("--data", default=None, metavar="FOLDER",
                   help="images to score on (default: the held-out photos, see `stylegram sr-data`)")
    v.add_argument("--json", action="store_true", help="print the full report (every image) as JSON")
    add_option_flags(v, EvalOptions)
    _add_common(v)
    v.set_defaults(func=cmd_eval_sr)

    d = sub.add_parser("sr-data", help="write the bundled training (or held-out) photos to a folder",
                       description="Write the photos of one split to FOLDER as PNG files: `--split train` for "
                                   "`stylegram train-sr --data FOLDER`, `--split held-out` for the photos eval-sr "
                                   "scores on by default. No file already there is replaced.")
    d.add_argument("folder", metavar="FOLDER", help="folder to write the photos to (created if missing)")
    d.add_argument("--split", choices=("train", "held-out"), default="train", help="which photos (default: train)")
    d.add_argument("--quiet", action="store_true", help="no messages")
    d.set_defaults(func=cmd_sr_data)


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
    from stylegram.feedforward.shipped import resolve_model

    model = resolve_model(ns.model) if task == "superres" else ns.model
    job = ApplyJob(model, ns.inputs, ns.output, flagged_options(ns, ApplyOptions()), device=ns.device)
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


# --------------------------------------------------------------------------------------------- eval-sr


def cmd_eval_sr(ns: argparse.Namespace) -> int:
    import json

    from stylegram.feedforward.evaluate import BICUBIC, EvalJob
    from stylegram.feedforward.shipped import resolve_model

    models = [m if m == BICUBIC else resolve_model(m) for m in ns.models]
    job = EvalJob(models, ns.data, flagged_options(ns, EvalOptions()), device=ns.device)
    bar = Progress(len(job.set.images), unit="img", quiet=ns.quiet)

    def step(event: StepEvent) -> bool:
        bar.update(1)
        return stopper.requested

    with StopOnInterrupt() as stopper:
        try:
            report = job.run(on_step=step)
        finally:
            bar.close()
    if ns.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(eval_table(report))
    if report.stopped:
        say(ns, f"interrupted after {len(report.images)} of {len(job.set.images)} images", force=True)
        return EXIT_INTERRUPTED
    return EXIT_OK


def eval_table(report: EvalReport) -> str:
    """The means of an evaluation report as a text table, with each model's
    difference from bicubic (PSNR in dB, SSIM and feature distance as ratios)."""
    head = (f"×{report.scale} on {report.set} ({len(report.images)} images: {', '.join(report.images)}); "
            f"{report.layout}; low resolution: {report.degradation}; border {report.border} px")
    rows = [f"{'method':24s} {'PSNR-Y':>7s} {'SSIM-Y':>7s} {'PSNR-RGB':>8s} {'relu2_2':>10s}   vs bicubic"]
    base = report.mean.get("bicubic")
    for method, m in report.mean.items():
        feature = f"{m.feature:10.4g}" if m.feature is not None else f"{'-':>10s}"
        versus = ""
        if method != "bicubic" and base is not None:
            versus = f"{m.psnr_y - base.psnr_y:+.2f} dB, SSIM ×{m.ssim_y / base.ssim_y:.4f}"
            if m.feature is not None and base.feature:
                versus += f", features ×{m.feature / base.feature:.3f}"
        rows.append(f"{method:24s} {m.psnr_y:7.2f} {m.ssim_y:7.4f} {m.psnr_rgb:8.2f} {feature}   {versus}")
    return "\n".join([head, *rows])


def cmd_sr_data(ns: argparse.Namespace) -> int:
    from stylegram.feedforward.photos import write_split

    written = write_split(ns.folder, ns.split)
    say(ns, f"{ns.folder}: {len(written)} {ns.split} photos ({', '.join(p.stem for p in written)})")
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
