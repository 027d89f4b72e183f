"""The ``stylegram`` command line: argument parsing, progress bars, messages and exit codes.

Exit codes: 0 done; 2 bad usage or bad input (one-line message, no traceback); 1 anything unexpected;
130 interrupted by Ctrl-C (the latest image is still written).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import signal
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import images
from .gatys import GatysOptions

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: reported in one line with exit code 2."""


# ---------------------------------------------------------------------------------------------------------------
# Options: argparse arguments derived from the GatysOptions dataclass, so defaults and help live in one place.


def split_list(kind: type) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}, got {text!r}"
            ) from None

    return parse


def _add_option_arguments(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    hints = typing.get_type_hints(GatysOptions)
    for f in dataclasses.fields(GatysOptions):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint, default = hints[f.name], f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f.metadata["help"] if default is None else f"{f.metadata['help']} (default: {shown})"
        args = typing.get_args(hint)
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(hint) is typing.Literal:
            parser.add_argument(flag, choices=args, default=None, help=text)
        elif (item := _tuple_item(hint)) is not None:
            parser.add_argument(flag, type=split_list(item), default=None, metavar="A,B,…", help=text)
        else:
            base = next((a for a in args if a is not type(None)), hint) if args else hint
            parser.add_argument(flag, type=base, default=None, help=text)


def _tuple_item(hint: Any) -> type | None:
    for h in (hint, *typing.get_args(hint)):
        if typing.get_origin(h) is tuple:
            return typing.get_args(h)[0]  # type: ignore[no-any-return]
    return None


def _options_from(ns: argparse.Namespace, base: GatysOptions) -> GatysOptions:
    changes = {f.name: getattr(ns, f.name) for f in dataclasses.fields(GatysOptions)
               if getattr(ns, f.name, None) is not None}
    try:
        return base.replace(**changes)
    except ValueError as e:
        raise UsageError(str(e)) from None


# ---------------------------------------------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="stylegram", description="Neural style transfer (Gatys et al.) on PyTorch.")
    p.add_argument("--version", action="version", version=f"stylegram {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("stylize", help="stylise a content image with one or more style images",
                       description="Optimise an image to match CONTENT's features and STYLE's Gram matrices.")
    s.add_argument("content", help="the content image (photo)")
    s.add_argument("styles", nargs="+", metavar="STYLE", help="one or more style images (paintings)")
    s.add_argument("-o", "--output", required=True, help="output image (.png keeps the metadata inside)")
    _add_common_run_arguments(s)
    _add_option_arguments(s)

    d = sub.add_parser("demo", help="stylise the built-in photo with the built-in generated painting")
    d.add_argument("-o", "--output", default="out/demo.png", help="output image (default: out/demo.png)")
    _add_common_run_arguments(d)
    _add_option_arguments(d)

    c = sub.add_parser("classify", help="top-5 ImageNet classes of an image (needs weights with a classifier)")
    c.add_argument("image")
    c.add_argument("--model", default="vgg16", help="weights id with a classifier: vgg16 or vgg19 (default: vgg16)")
    c.add_argument("--weights", help="a weights file (.pth or .safetensors) to use")
    c.add_argument("--top", type=int, default=5, help="how many classes to show (default: 5)")

    w = sub.add_parser("weights", help="list or verify the VGG weights")
    w.add_argument("action", choices=["list", "verify"])

    i = sub.add_parser("info", help="print how an output image was made")
    i.add_argument("image")
    for name, func in COMMANDS.items():
        sub.choices[name].set_defaults(func=func)
    # Other methods add their own subcommands (each sets its own ``func``).
    from . import cli_fast, cli_figures

    cli_fast.register(sub)
    cli_figures.register(sub)
    return p


def _checkpoint_to(ns: argparse.Namespace) -> tuple[Path, int] | None:
    if not getattr(ns, "checkpoint", None):
        return None
    if ns.checkpoint_every < 1:
        raise UsageError("--checkpoint-every must be at least 1")
    return Path(ns.checkpoint), ns.checkpoint_every


def _resume_state(ns: argparse.Namespace) -> dict[str, Any] | None:
    from .checkpoint import CheckpointError, load

    if not getattr(ns, "resume", None):
        return None
    try:
        return load(ns.resume)
    except CheckpointError as e:
        raise UsageError(str(e)) from None


def _add_common_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="PATH", help="save the optimisation state here every --checkpoint-every "
                   "evaluations (atomically), to --resume it later")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N", help="default: 100")
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint made with the same options; "
                   "ends with the same image as an uninterrupted run")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also write the image every N iterations, as OUT_0100.png … (default: off)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--max-memory", type=_memory_budget, default=None, metavar="SIZE",
                   help="memory budget (2GB, 512MB, 1.5GiB …; default: the memory free on the device): a stage "
                        "whose estimated peak exceeds it runs in tiles; refuse to start when not even tiles fit")


def _memory_budget(text: str) -> int:
    from .memory import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _check_memory(ns: argparse.Namespace, options: GatysOptions, content: Any, stages: Sequence[Any], device: Any,
                  arch: str) -> int | None:
    """The memory budget; refuses, before the first evaluation, a run that would not fit it even in tiles, and
    names a size that fits. Says which stages run in tiles.

    The estimate counts the weights, though they are loaded by now: against the free memory that errs on the
    safe side by ~59 MB, and against --max-memory it is what the user asked to bound.
    """
    from . import memory, tiled
    from .gatys import resolve_precision

    options = resolve_precision(options, device)  # bfloat16 halves the activations but adds weight copies
    budget = ns.max_memory if ns.max_memory is not None else memory.available(device)
    for stage in reversed(stages):  # the largest first: the one a refusal should name
        staged = options.replace(size=stage.size, iterations=stage.iterations)
        setup = memory.plan(staged, content.size, budget, arch=arch)
        if setup is None:
            assert budget is not None  # plan() never refuses an unknown budget
            need = memory.estimate(staged, content.size, arch=arch).total
            fits = memory.largest_size(options, content.size, budget, iterations=stage.iterations, arch=arch)
            advice = (f"the largest size that fits is --size {fits}" if fits is not None
                      else "no size fits (the weights alone need more)")
            what = f"--size {options.size}" + (f" (its {stage.size} px stage)" if stage.size != options.size else "")
            raise UsageError(f"{what} needs about {memory.format_size(need)} at its peak, more than "
                             f"the {memory.format_size(budget)} available, even in tiles; {advice}, or raise "
                             "--max-memory")
        if setup.tiling is not None:
            h, w = memory.output_shape(content.size, stage.size)
            n = len(tiled.boxes(h, w, setup.tiling))
            _say(ns, f"{w}×{h} px runs in {n} tiles (cores ≤ {setup.tiling.core} px, margins "
                     f"{setup.tiling.margin} px), L-BFGS history {setup.history}, about "
                     f"{memory.format_size(setup.estimate.total)} at its peak")
    return budget


# ---------------------------------------------------------------------------------------------------------------
# Commands


def cmd_stylize(ns: argparse.Namespace) -> int:
    options = _options_from(ns, GatysOptions())
    out = images.check_output(ns.output, [ns.content, *ns.styles])
    content = images.load_image(ns.content)
    styles = [images.load_image(p) for p in ns.styles]
    inputs = {"content": describe_input(ns.content), "styles": [describe_input(p) for p in ns.styles]}
    return _run_and_save(ns, options, content, styles, out, inputs)


def cmd_demo(ns: argparse.Namespace) -> int:
    from .samples import demo_content, generated_painting

    # Small enough to finish in a few minutes on a laptop CPU; every default can be overridden.
    base = GatysOptions(size=256, iterations=300)
    options = _options_from(ns, base)
    out = images.check_output(ns.output, [])
    inputs = {"content": "skimage.data.astronaut", "styles": ["stylegram.samples.generated_painting(seed=7)"]}
    return _run_and_save(ns, options, demo_content(), [generated_painting(384, seed=7)], out, inputs)


def describe_input(path: str) -> dict[str, str]:
    data = Path(path).read_bytes()
    return {"file": os.path.basename(path), "sha256": hashlib.sha256(data).hexdigest()}


def _run_and_save(ns: argparse.Namespace, options: GatysOptions, content: Any, styles: list[Any],
                  out: Path, inputs: dict[str, Any]) -> int:
    import torch

    from . import __version__, multiscale
    from .gatys import check
    from .weights import load_vgg

    device = torch.device(ns.device) if ns.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        stages = multiscale.plan(options)
    except ValueError as e:
        raise UsageError(str(e)) from None
    _say(ns, f"loading {options.model} weights …")
    vgg, info = load_vgg(options.model, path=options.weights, pooling=options.pooling, classifier=False,
                         device=device)
    try:
        check(vgg, options, len(styles))
    except ValueError as e:
        raise UsageError(str(e)) from None
    budget = _check_memory(ns, options, content, stages, device, info.arch)
    meta: dict[str, Any] = {
        "stylegram": __version__, "method": "gatys", "options": options.to_dict(), "inputs": inputs,
        "weights": {"id": info.source, "sha256": info.sha256}, "device": str(device),
        "torch": torch.__version__, "stages": [dataclasses.asdict(st) for st in stages],
    }
    progress = _Progress(ns, out, meta, sum(st.iterations for st in stages))
    resume = _resume_state(ns)
    if resume is not None:  # the bar starts where the checkpoint left off
        progress.bar.update(sum(st.iterations for st in stages[: int(resume["stage"])]) + int(resume["count"]))
    with StopOnInterrupt() as stopper:
        result = multiscale.run(vgg, content, styles, options, device=device,
                                on_step=lambda e: progress.step(e, stopper.requested),
                                checkpoint_to=_checkpoint_to(ns), resume=resume, max_memory=budget)
    progress.close()
    meta.update(options=result.options.to_dict(), iterations=result.iterations, losses=result.losses,
                seconds=round(result.elapsed, 2), tiles=result.tiles,
                interrupted=result.stopped)
    images.save_image(images.to_pil(result.image), out, meta)
    h, w = result.image.shape[-2:]
    if result.stopped:
        _say(ns, f"interrupted at iteration {result.iterations}; kept the latest image in {out}", force=True)
        return EXIT_INTERRUPTED
    _say(ns, f"wrote {out} ({w}×{h}, {result.iterations} iterations in {result.elapsed:.1f} s)", force=True)
    return EXIT_OK


class _Progress:
    """A tqdm bar over loss evaluations, and the periodic saves of --save-every."""

    def __init__(self, ns: argparse.Namespace, out: Path, meta: dict[str, Any], total: int) -> None:
        from tqdm import tqdm

        self.ns, self.out, self.meta = ns, out, meta
        # One bar over every stage of a coarse-to-fine run: total is the sum of the stages' evaluations.
        self.bar = tqdm(total=total, disable=ns.quiet, unit="it", dynamic_ncols=True, file=sys.stderr)

    def step(self, event: Any, stop: bool) -> bool:
        """Advance the bar, save if due; returns ``stop`` so the run ends after a Ctrl-C."""
        self.bar.update(1)
        postfix = {k: f"{v:.3g}" for k, v in event.losses.items()}
        if event.stages > 1:
            postfix = {"stage": f"{event.stage + 1}/{event.stages}", **postfix}
        self.bar.set_postfix(postfix, refresh=False)
        every = self.ns.save_every
        if every and event.iteration % every == 0 and event.iteration < event.total:
            # Stages restart their count, and their images differ in size: name each stage's saves apart.
            stage = f"s{event.stage + 1}_" if event.stages > 1 else ""
            path = self.out.with_name(f"{self.out.stem}_{stage}{event.iteration:04d}{self.out.suffix}")
            images.save_image(images.to_pil(event.image()), path, {**self.meta, "iterations": event.iteration})
        return stop

    def close(self) -> None:
        self.bar.close()


class StopOnInterrupt:
    """First Ctrl-C asks the run to stop after the current step; a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def cmd_classify(ns: argparse.Namespace) -> int:
    import torch

    from .imagenet import top_classes
    from .weights import load_vgg

    img = images.load_image(ns.image)
    vgg, _ = load_vgg(ns.model, path=ns.weights, pooling="max", classifier=True)
    if vgg.classifier is None:
        raise UsageError(f"the weights '{ns.model}' have no classifier (fc6–fc8); use --model vgg16 or vgg19 "
                         "with torchvision's weights file")
    x = images.to_tensor(images.resize_to(_center_crop(img), (224, 224)))
    with torch.no_grad():
        probs = vgg.classify(x).softmax(dim=1)[0]
    for name, p in top_classes(probs, ns.top):
        print(f"{p * 100:6.2f}%  {name}")
    return EXIT_OK


def _center_crop(img: Any) -> Any:
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))


def cmd_weights(ns: argparse.Namespace) -> int:
    from .weights import list_sources, verify

    if ns.action == "list":
        for s in list_sources():
            state = "available" if s.available else "missing"
            size = f"{s.size / 1e6:8.1f} MB" if s.size else "        -  "
            print(f"{s.id:22s} {state:9s} {size}  {s.sha256 or '-':64s}  {s.where}")
        return EXIT_OK
    failures = 0
    for r in verify():
        print(f"{r.id:22s} {'ok' if r.ok else 'PROBLEM'}  {r.message}")
        failures += not r.ok
    return EXIT_UNEXPECTED if failures else EXIT_OK


def cmd_info(ns: argparse.Namespace) -> int:
    meta = images.read_metadata(ns.image)
    if meta is None:
        raise UsageError(f"'{ns.image}' carries no stylegram metadata")
    print(json.dumps(meta, indent=2, sort_keys=True))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stylize": cmd_stylize, "demo": cmd_demo, "classify": cmd_classify, "weights": cmd_weights, "info": cmd_info,
}


def _say(ns: argparse.Namespace, text: str, force: bool = False) -> None:
    if force or not getattr(ns, "quiet", False):
        print(text, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)  # argparse itself exits 2 with a usage line on bad arguments
    from .checkpoint import CheckpointError
    from .weights import WeightsError

    start = time.perf_counter()
    try:
        code: int = ns.func(ns)
    except (UsageError, images.ImageError, WeightsError, CheckpointError) as e:
        print(f"stylegram: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stylegram: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # anything unexpected: one line, the traceback only on request
        if os.environ.get("STYLEGRAM_DEBUG"):
            raise
        print(f"stylegram: unexpected error: {type(e).__name__}: {e} (set STYLEGRAM_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_UNEXPECTED
    if ns.command in ("stylize", "demo"):
        _say(ns, f"total time {time.perf_counter() - start:.1f} s")
    return code


if __name__ == "__main__":
    # Under `python -m stylegram.cli` this file runs as __main__, a second copy of the module: dispatch to the
    # importable stylegram.cli so that its UsageError is the one the other modules raise and main() catches.
    from stylegram.cli import main as _main

    sys.exit(_main())
