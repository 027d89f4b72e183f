"""Command-line subcommands for feed-forward style transfer (Johnson et al.): train, apply, export.

Each subcommand sets ``func`` (taking the parsed namespace, returning an exit code); errors the user can fix
are raised as :class:`stylegram.cli.UsageError`, ImageError or WeightsError and become exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import typing
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylegram.cli.common import EXIT_INTERRUPTED, EXIT_OK, StopOnInterrupt, UsageError, split_list
from stylegram.core import images
from stylegram.core.device import PRECISIONS
from stylegram.core.video import VIDEO_EXTENSIONS, is_video, stylize_video
from stylegram.feedforward.train import TrainOptions
from stylegram.losses.color import keep_colors

# Options given as positional-like required flags rather than derived from the dataclass.
_TRAIN_SPECIAL = {"style", "data", "output", "resume"}


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
    _add_train_options(t)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    a = sub.add_parser("apply", help="stylise images, folders of images, or videos with a trained model",
                       description="Stylise each INPUT with MODEL (from `stylegram train`). One image or video in "
                                   "and OUT with an extension: OUT is that file; otherwise OUT is a folder.")
    a.add_argument("model", metavar="MODEL", help="model file (.safetensors; .onnx with --backend onnxruntime)")
    a.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders of images, or video files")
    a.add_argument("-o", "--output", required=True, metavar="OUT", help="output file or folder")
    a.add_argument("--size", type=int, default=None, help="scale inputs so the longer side has this many pixels")
    a.add_argument("--original-colors", action="store_true", help="keep each input's colours (luminance only)")
    a.add_argument("--batch-size", type=int, default=4, help="images or frames per forward pass (default: 4)")
    a.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch", help="inference engine")
    a.add_argument("--device", default=None, help="cpu, cuda … for the torch backend (default: cuda if available)")
    a.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="arithmetic of the torch backend: float32, bfloat16 (faster where the hardware has it; "
                        "output within a fraction of a grey level of float32 on average), or auto: bfloat16 where "
                        "the hardware has it, else float32 (default: auto)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_apply)

    e = sub.add_parser("export", help="export a trained model to ONNX (dynamic height and width)")
    e.add_argument("model", metavar="MODEL", help="model file (.safetensors)")
    e.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    e.set_defaults(func=cmd_export)


def _user_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn this module's ValueError subclasses into UsageError (one line, exit 2)."""

    @wraps(func)
    def run(ns: argparse.Namespace) -> int:
        from stylegram.core.video import VideoError
        from stylegram.feedforward.data import TrainDataError
        from stylegram.feedforward.model import ModelError
        from stylegram.feedforward.train import TrainError

        try:
            return func(ns)
        except (ModelError, TrainError, TrainDataError, VideoError) as e:
            raise UsageError(str(e)) from None

    return run


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainOptions)
    for f in dataclasses.fields(TrainOptions):
        if f.name in _TRAIN_SPECIAL:
            continue
        hint, default = hints[f.name], f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{f.metadata['help']} (default: {shown})"
        flag = "--" + f.name.replace("_", "-")
        if typing.get_origin(hint) is typing.Literal:
            parser.add_argument(flag, choices=typing.get_args(hint), default=None, help=text)
        elif typing.get_origin(hint) is tuple:
            parser.add_argument(flag, type=split_list(str), default=None, metavar="A,B,…", help=text)
        else:
            parser.add_argument(flag, type=hint, default=None, help=text)


def train_options_from(ns: argparse.Namespace) -> TrainOptions:
    changes = {f.name: getattr(ns, f.name) for f in dataclasses.fields(TrainOptions)
               if getattr(ns, f.name, None) is not None}
    return TrainOptions(**changes)


@_user_errors
def cmd_train(ns: argparse.Namespace) -> int:
    import torch.distributed as dist

    from stylegram.feedforward.train import train

    options = train_options_from(ns)
    if not os.path.isfile(options.style):
        raise UsageError(f"style image not found: {options.style}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started_group = False
    if world > 1 and not dist.is_initialized():  # launched by torchrun: one process per rank
        dist.init_process_group("nccl" if torch.cuda.is_available() and ns.device != "cpu" else "gloo")
        started_group = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    device = ns.device
    if device is None and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    progress = _TrainProgress(options, quiet=ns.quiet or rank != 0, world=world)
    try:
        with StopOnInterrupt() as stopper:
            result = train(options, on_step=lambda e: progress.step(e) or stopper.requested, device=device)
    finally:
        progress.close()
        if started_group:
            dist.destroy_process_group()
    if rank == 0:
        skipped = f", skipped {result.skipped} unreadable file(s)" if result.skipped else ""
        print(f"wrote {options.output} after {result.iterations} iterations in {result.elapsed:.1f} s "
              f"({result.photos} photos{skipped})", file=sys.stderr)
    if result.stopped:
        if rank == 0:
            print(f"interrupted; resume with the same command and --resume (checkpoint in {options.workdir})",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


@_user_errors
def cmd_apply(ns: argparse.Namespace) -> int:
    if ns.size is not None and not 8 <= ns.size <= 16384:
        raise UsageError(f"--size must be between 8 and 16384 pixels, got {ns.size}")
    if ns.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {ns.batch_size}")
    jobs, single = _apply_jobs(ns.inputs, Path(ns.output))
    stylize, describe = _stylizer(ns)
    images_done, skipped = 0, list[tuple[str, str]]()
    bar = _bar(sum(1 for j in jobs if not is_video(j[0])), ns.quiet, "img")
    for group in _image_groups([j for j in jobs if not is_video(j[0])], ns, skipped, strict=single):
        outs = stylize(torch.cat([x for _, _, x in group]))
        for i, (src, dst, x) in enumerate(group):
            y = outs[i : i + 1]
            meta = {**describe, "input": os.path.basename(src), "original_colors": ns.original_colors}
            images.save_image(images.to_pil(keep_colors(y, x) if ns.original_colors else y), dst, meta)
        images_done += len(group)
        bar.update(len(group))
    bar.close()
    for src, dst in (j for j in jobs if is_video(j[0])):
        vbar = _bar(0, ns.quiet, "frame")
        result = stylize_video(src, dst, lambda x: keep_colors(stylize(x), x) if ns.original_colors else stylize(x),
                               size=ns.size, batch=ns.batch_size, on_frame=functools.partial(_tick, vbar))
        vbar.close()
        _say(ns, f"wrote {dst}: {result.frames} frames at {float(result.rate):g} fps, {result.size[0]}×"
                 f"{result.size[1]}, {result.codec}" + (", audio copied" if result.audio else ""))
    for name, why in skipped:
        print(f"stylegram: skipped {name}: {why}", file=sys.stderr)
    if images_done:
        where = jobs[0][1] if single else ns.output
        _say(ns, f"wrote {images_done} image(s) to {where}")
    return EXIT_OK


def _apply_jobs(inputs: list[str], out: Path) -> tuple[list[tuple[str, Path]], bool]:
    """(input file, output file) pairs; whether OUT names a single output file."""
    from stylegram.feedforward.data import EXTENSIONS

    for name in inputs:
        if not os.path.exists(name):
            raise UsageError(f"input not found: {name}")
    single = len(inputs) == 1 and os.path.isfile(inputs[0]) and out.suffix != "" and not out.is_dir()
    if single:
        src = inputs[0]
        if is_video(src) != is_video(out):
            raise UsageError(f"'{src}' and '{out}' must both be videos or both be images")
        if not is_video(out):
            images.check_output(out, [src])
        elif os.path.abspath(src) == os.path.abspath(out):
            raise UsageError(f"refusing to overwrite the input '{src}'")
        return [(src, out)], True
    if out.exists() and not out.is_dir():
        raise UsageError(f"with several inputs or a folder, OUT must be a folder; '{out}' is a file")
    jobs: list[tuple[str, Path]] = []
    for name in inputs:
        root = Path(name)
        if root.is_dir():
            wanted = EXTENSIONS | VIDEO_EXTENSIONS
            for f in sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file()):
                jobs.append((os.fspath(f), out / root.name / f.relative_to(root)))
        else:
            jobs.append((name, out / Path(name).name))
    if not jobs:
        raise UsageError(f"no images or videos found in {', '.join(inputs)}")
    for src, dst in jobs:  # e.g. `apply MODEL photos -o .` would write photos/x.jpg over itself
        if dst.exists() and os.path.samefile(src, dst):
            raise UsageError(f"refusing to overwrite the input '{src}': choose another OUT folder")
    return jobs, False


def _image_groups(jobs: list[tuple[str, Path]], ns: argparse.Namespace, skipped: list[tuple[str, str]],
                  strict: bool) -> Iterator[list[tuple[str, Path, Tensor]]]:
    """Consecutive images of one size, up to --batch-size, as (source, target, (1, 3, H, W) tensor)."""
    group: list[tuple[str, Path, Tensor]] = []
    for src, dst in jobs:
        try:
            img = images.load_image(src)
        except images.ImageError as e:
            if strict:
                raise
            skipped.append((src, str(e)))
            continue
        x = images.to_tensor(images.resize_longest(img, ns.size) if ns.size else img)
        if group and (x.shape != group[0][2].shape or len(group) >= ns.batch_size):
            yield group
            group = []
        group.append((src, dst, x))
    if group:
        yield group


def _stylizer(ns: argparse.Namespace) -> tuple[Callable[[Tensor], Tensor], dict[str, Any]]:
    """The inference function (B, 3, H, W) → (B, 3, H, W) of the chosen backend, and what to record with outputs."""
    import dataclasses as dc

    from stylegram import __version__
    from stylegram.feedforward.model import load_model

    if ns.backend == "onnxruntime":
        from stylegram.feedforward.export import OnnxStyleModel

        if ns.precision == "bfloat16":
            raise UsageError("--precision bfloat16 needs the torch backend (the ONNX model runs in float32)")
        onnx_model = OnnxStyleModel.load(ns.model)
        info, precision = onnx_model.info, "float32"
        func: Callable[[Tensor], Tensor] = onnx_model
    else:
        device = ns.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(ns.model, device=device, precision=ns.precision)
        info, func, precision = model.info, model.stylize_tensor, model.precision
    summary = {k: v for k, v in dc.asdict(info).items() if k != "extra"}
    return func, {"stylegram": __version__, "method": "johnson", "model": os.path.basename(ns.model),
                  "backend": ns.backend, "precision": precision, "model_info": summary}


def _bar(total: int, quiet: bool, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, disable=quiet or (total == 0 and unit == "img"), unit=unit,
                dynamic_ncols=True, file=sys.stderr)


def _tick(bar: Any, done: int, total: int) -> None:
    if total and bar.total != total:
        bar.total = total
    bar.update(1)


def _say(ns: argparse.Namespace, text: str) -> None:
    if not ns.quiet:
        print(text, file=sys.stderr)



@_user_errors
def cmd_export(ns: argparse.Namespace) -> int:
    from stylegram.feedforward.export import export_onnx
    from stylegram.feedforward.model import load_model

    model = load_model(ns.model)
    if not ns.onnx.lower().endswith(".onnx"):
        raise UsageError(f"the ONNX output must end in .onnx, got {ns.onnx!r}")
    report = export_onnx(model, ns.onnx, opset=ns.opset)
    print(f"wrote {ns.onnx} (onnxruntime matches PyTorch within {report.max_abs_diff:.1e} on a "
          f"{report.checked[1]}×{report.checked[0]} test image)", file=sys.stderr)
    return EXIT_OK


class _TrainProgress:
    """tqdm bar over iterations: the loss terms, images per second, and (tqdm's own) time left."""

    def __init__(self, options: TrainOptions, quiet: bool, world: int) -> None:
        self.options, self.quiet, self.world = options, quiet, world
        self.bar: Any = None
        self.first: int | None = None

    def step(self, event: Any) -> bool:
        from tqdm import tqdm

        if self.quiet:
            return False
        if self.bar is None:
            self.first = event.iteration - 1
            self.bar = tqdm(total=event.total, initial=self.first, unit="it", dynamic_ncols=True, file=sys.stderr)
        done = event.iteration - (self.first or 0)
        rate = done * self.options.batch_size * self.world / max(event.elapsed, 1e-9)
        shown = {k: f"{v:.3g}" for k, v in event.losses.items() if k != "total"}
        self.bar.set_postfix({**shown, "img/s": f"{rate:.1f}"}, refresh=False)
        self.bar.update(1)
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
