"""``stylegram dn learn | encode | filters``: deconvolutional networks (:mod:`stylegram.deconvnets`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stylegram.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Progress,
    add_option_flags,
    options_from,
    run_with_progress,
    say,
    split_list,
)
from stylegram.deconvnets.options import PAPER_LAYERS, InferenceOptions, LearnOptions


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``stylegram dn`` and its subcommands."""
    dn = sub.add_parser("dn", help="deconvolutional networks (Zeiler et al. 2010): learn, encode, filters",
                        description="Multi-layer convolutional sparse coding, learned without labels.")
    cmds = dn.add_subparsers(dest="dn_command", required=True, metavar="COMMAND")

    learn = cmds.add_parser("learn", help="learn the filters of every layer from a folder of images")
    learn.add_argument("folder", help="folder of training images (greyscale or colour; each is cropped square)")
    learn.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    learn.add_argument("--layers", type=int, default=len(PAPER_LAYERS), help="number of layers (default: 2)")
    learn.add_argument("--maps", type=split_list(int, "integers"), default=None, metavar="A,B,…",
                       help="feature maps per layer (default: 9,45, the paper's)")
    learn.add_argument("--filter-size", type=int, default=None, help="filter side (default: 7, the paper's)")
    learn.add_argument("--lambda", dest="lam", type=split_list(float, "numbers"), default=None, metavar="A,B,…",
                       help="λ per layer, or one for all (default: 1,10)")
    learn.add_argument("--p", type=float, default=None, help="sparsity norm |z|^p, 0 ≤ p ≤ 1 (default: 1)")
    learn.add_argument("--checkpoint", metavar="PATH", help="save the learning state here every "
                       "--checkpoint-every epochs (atomically), to --resume it later")
    learn.add_argument("--checkpoint-every", type=int, default=1, metavar="N", help="default: 1")
    learn.add_argument("--resume", metavar="PATH", help="continue from a checkpoint made with the same options "
                       "and images; ends with the same filters as an uninterrupted run")
    _common(learn)
    add_option_flags(learn, LearnOptions)
    add_option_flags(learn, InferenceOptions)
    learn.set_defaults(func=cmd_learn)

    enc = cmds.add_parser("encode", help="infer an image's maps with a model; write maps and reconstructions",
                          description="Infer each layer's sparse maps. The inference flags override the options "
                          "the model was learned with (their defaults shown are the library's).")
    enc.add_argument("model", help="model file (.safetensors) from 'stylegram dn learn'")
    enc.add_argument("image", help="the image to encode")
    enc.add_argument("-o", "--output", required=True, help="folder for the maps, reconstructions and summary")
    enc.add_argument("--size", type=int, default=None, help="scale the image so its longest side is this first")
    enc.add_argument("--json", action="store_true", help="print the summary (objective, non-zeros) as JSON")
    _common(enc)
    add_option_flags(enc, InferenceOptions)
    enc.set_defaults(func=cmd_encode)

    fil = cmds.add_parser("filters", help="draw a model's filters (layer 2 and up projected to pixel space)")
    fil.add_argument("model", help="model file (.safetensors)")
    fil.add_argument("-o", "--output", required=True, help="figure to write (.png keeps the record inside)")
    fil.add_argument("--quiet", action="store_true", help="no messages")
    fil.set_defaults(func=cmd_filters)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_learn(ns: argparse.Namespace) -> int:
    from stylegram.deconvnets.jobs import LearnJob, layer_specs

    specs = layer_specs(ns.layers, ns.maps, ns.filter_size, ns.lam, ns.p)
    job = LearnJob(ns.folder, ns.output, specs, options_from(ns, LearnOptions()),
                   options_from(ns, InferenceOptions()), device=ns.device, checkpoint=ns.checkpoint,
                   checkpoint_every=ns.checkpoint_every, resume=ns.resume)
    say(ns, f"learning {len(specs)} layer(s) on {len(job.files)} image(s) on {job.device} …")
    model = run_with_progress(job.run, Progress(job.total, initial=job.done, unit="epoch", quiet=ns.quiet),
                              stage_label="layer")
    seconds = model.record.get("seconds", 0.0)
    if model.record.get("stopped"):
        say(ns, f"interrupted; wrote the filters so far to {job.output} ({seconds:.1f} s)", force=True)
        return EXIT_INTERRUPTED
    say(ns, f"wrote {job.output} ({len(model.layers)} layer(s), {seconds:.1f} s)", force=True)
    return EXIT_OK


def cmd_encode(ns: argparse.Namespace) -> int:
    from stylegram.deconvnets.jobs import EncodeJob

    overrides = {f: getattr(ns, f) for f in InferenceOptions.__dataclass_fields__ if getattr(ns, f) is not None}
    job = EncodeJob(ns.model, ns.image, ns.output, size=ns.size, device=ns.device, inference=overrides)
    summary = run_with_progress(job.run, Progress(job.total, unit="step", quiet=ns.quiet or ns.json),
                                stage_label="layer")
    if ns.json:
        print(json.dumps(summary, indent=2))
    say(ns, f"wrote {len(summary['files'])} files to {job.output}", force=not ns.json)
    return EXIT_INTERRUPTED if summary.get("stopped") else EXIT_OK


def cmd_filters(ns: argparse.Namespace) -> int:
    from stylegram.deconvnets.jobs import write_filter_figure

    out = write_filter_figure(ns.model, ns.output)
    say(ns, f"wrote {out}", force=True)
    return EXIT_OK
