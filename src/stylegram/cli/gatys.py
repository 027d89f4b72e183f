"""``stylegram stylize`` and ``stylegram demo``: Gatys transfer through :class:`stylegram.gatys.StylizeJob`."""

from __future__ import annotations

import argparse
from typing import Any

from stylegram.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNEXPECTED,
    Progress,
    add_option_flags,
    options_from,
    run_with_progress,
    say,
)
from stylegram.gatys.options import PRESETS, GatysOptions

# Small enough to finish in a few minutes on a laptop CPU; every default can be overridden.
DEMO_DEFAULTS = GatysOptions(size=256, iterations=300)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    s = sub.add_parser("stylize", help="stylise a content image with one or more style images",
                       description="Optimise an image to match CONTENT's features and STYLE's Gram matrices.")
    s.add_argument("content", help="the content image (photo)")
    s.add_argument("styles", nargs="+", metavar="STYLE", help="one or more style images (paintings)")
    s.add_argument("-o", "--output", required=True, help="output image (.png keeps the metadata inside)")
    _add_run_arguments(s)
    add_option_flags(s, GatysOptions)
    s.set_defaults(func=cmd_stylize)

    d = sub.add_parser("demo", help="stylise the built-in photo with the built-in generated painting")
    d.add_argument("-o", "--output", default="out/demo.png", help="output image (default: out/demo.png)")
    _add_run_arguments(d)
    add_option_flags(d, GatysOptions, base=DEMO_DEFAULTS)
    d.set_defaults(func=cmd_demo)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="PATH", help="save the optimisation state here every --checkpoint-every "
                   "evaluations (atomically), to --resume it later")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N", help="default: 100")
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint made with the same options; "
                   "ends with the same image as an uninterrupted run")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also write the image every N iterations, as OUT_0100.png … (default: off)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="light, balanced (the default) or bold: style strength 0.3, 0.5, 0.7; paper: the paper's "
                        "objective, α/β = 1e-3, equal layer weights, white-noise start. Other flags apply on top")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--max-memory", type=_memory_budget, default=None, metavar="SIZE",
                   help="memory budget (2GB, 512MB, 1.5GiB …; default: the memory free on the device): a stage "
                        "whose estimated peak exceeds it runs in tiles; refuse to start when not even tiles fit")


def _memory_budget(text: str) -> int:
    from stylegram.core.units import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _base(ns: argparse.Namespace, default: GatysOptions) -> GatysOptions:
    return default if ns.preset is None else GatysOptions.from_preset(
        ns.preset, **{k: getattr(default, k) for k in ("size", "iterations") if getattr(default, k) !=
                      getattr(GatysOptions(), k)})


def cmd_stylize(ns: argparse.Namespace) -> int:
    options = options_from(ns, _base(ns, GatysOptions()))
    return _run(ns, options, ns.content, ns.styles, None)


def cmd_demo(ns: argparse.Namespace) -> int:
    from stylegram.core.samples import demo_content, generated_painting

    options = options_from(ns, _base(ns, DEMO_DEFAULTS))
    inputs = {"content": "skimage.data.astronaut", "styles": ["stylegram.samples.generated_painting(seed=7)"]}
    return _run(ns, options, demo_content(), [generated_painting(384, seed=7)], inputs)


def _run(ns: argparse.Namespace, options: GatysOptions, content: Any, styles: list[Any],
         inputs: dict[str, Any] | None) -> int:
    from stylegram.gatys.stylize import StylizeJob

    say(ns, f"loading {options.model} weights …")
    job = StylizeJob(content, styles, options, ns.output, device=ns.device, max_memory=ns.max_memory,
                     checkpoint=ns.checkpoint, checkpoint_every=ns.checkpoint_every, resume=ns.resume,
                     save_every=ns.save_every, inputs=inputs)
    for note in job.notes:
        say(ns, note)
    # One bar over every stage of a coarse-to-fine run; a resumed run starts where its checkpoint left off.
    result = run_with_progress(job.run, Progress(job.total, initial=job.done, quiet=ns.quiet))
    out = job.output
    h, w = result.image.shape[-2:]
    if result.diverged:
        say(ns, f"stylegram: the loss became NaN or infinite after {result.iterations} evaluations; kept the best "
                f"image before that in {out}. Try a smaller --learning-rate, --precision float32 or --optimizer "
                "adam", force=True)
        return EXIT_UNEXPECTED
    if result.stopped:
        say(ns, f"interrupted at iteration {result.iterations}; kept the latest image in {out}", force=True)
        return EXIT_INTERRUPTED
    say(ns, f"wrote {out} ({w}×{h}, {result.iterations} iterations in {result.elapsed:.1f} s)", force=True)
    return EXIT_OK
