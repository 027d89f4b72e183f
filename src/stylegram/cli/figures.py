"""Command-line subcommands for figures of the representations: reconstruct, grid.

* ``stylegram reconstruct content IMAGE -o DIR``: white-noise reconstructions from single layers (Figure 1).
* ``stylegram reconstruct style IMAGE -o DIR``: textures from growing subsets of style layers (Figure 1).
* ``stylegram grid CONTENT STYLE -o FIGURE.png``: style-layer subsets × α/β ratios (Figure 3), or with
  ``--styles A,B,…`` styles × ratios.

The work is done by :class:`stylegram.gatys.paper_figures.ReconstructJob` and ``GridJob``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from stylegram.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Progress,
    StopOnInterrupt,
    add_option_flags,
    options_from,
    say,
    split_list,
)
from stylegram.core.events import StepEvent
from stylegram.gatys.options import GatysOptions
from stylegram.gatys.reconstruct import CONTENT_LAYERS, STYLE_LAYERS

NORMALIZED_MODEL = "vgg16-caffe-normalized"
# Small enough for a CPU: 5 panels of 256 px at 300 evaluations take minutes, not hours. All overridable.
FIGURE_DEFAULTS = GatysOptions(size=256, iterations=300, pooling="avg")  # the paper's figures: its pooling
_RUN_FIELDS = ("size", "iterations", "seed", "pooling", "optimizer", "precision", "model", "weights")


def _list(kind: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    parse_items = split_list(kind, what)

    def parse(text: str) -> tuple[Any, ...]:
        items = parse_items(text)
        if not items:
            raise argparse.ArgumentTypeError(f"expected at least one {what}")
        return items

    return parse


def _add_run_arguments(p: argparse.ArgumentParser, base: GatysOptions) -> None:
    """The optimisation flags shared with ``stylize``, derived from :class:`GatysOptions`."""
    note = f"; {NORMALIZED_MODEL} is VGG16 with each filter's mean activation rescaled to 1, as in the paper"
    add_option_flags(p, GatysOptions, only=_RUN_FIELDS, base=base, extra_help={"model": note})
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the ``stylegram`` parser."""
    layer_note = ("Layer names: the paper's 'conv1_1' is the rectified response, relu1_1 here, so the defaults "
                  "use relu names; any layer name (conv3_1, pool2 …) is accepted.")
    r = sub.add_parser("reconstruct", help="reconstruct an image from white noise through single VGG layers",
                       description="Optimise white noise to match one layer's features (content) or the Gram "
                       "matrices of growing layer subsets (style), as in Figure 1 of Gatys et al. " + layer_note)
    kinds = r.add_subparsers(dest="kind", required=True, metavar="KIND")
    c = kinds.add_parser("content", help="one reconstruction per layer from its feature maps",
                         description="Lower layers give near-perfect copies; higher ones keep the arrangement "
                         "and lose the pixels. " + layer_note)
    c.add_argument("--layers", type=_list(str, "layer names"), default=CONTENT_LAYERS, metavar="A,B,…",
                   help=f"one panel per layer (default: {','.join(CONTENT_LAYERS)})")
    s = kinds.add_parser("style", help="one texture per growing subset of style layers",
                         description="Panel d matches the Gram matrices of the first d style layers; the "
                         "textures' structures grow with depth. " + layer_note)
    s.add_argument("--layers", type=_list(str, "layer names"), default=STYLE_LAYERS, metavar="A,B,…",
                   help=f"the style layers, shallow to deep (default: {','.join(STYLE_LAYERS)})")
    s.add_argument("--depths", type=_list(int, "integers"), default=None, metavar="1,2,…",
                   help="which prefixes of --layers to show (default: all, 1 to the number of layers)")
    for p in (c, s):
        p.add_argument("image", help="the image to reconstruct")
        p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the panels and figure")
        p.add_argument("--figure", default=None, metavar="PATH",
                       help="where to write the labelled figure (default: DIR/content_figure.png or "
                       "DIR/style_figure.png)")
        _add_run_arguments(p, FIGURE_DEFAULTS)
        p.set_defaults(func=cmd_reconstruct)

    g = sub.add_parser("grid", help="a grid of stylisations over style layers and α/β ratios (Figure 3)",
                       description="Rows are style-layer subsets (relu1_1 … up to relu5_1 by depth) or, with "
                       "--styles, style images; columns are α/β ratios (content weight 1, style weight 1/ratio).")
    g.add_argument("content", help="the content image")
    g.add_argument("style", nargs="?", default=None, help="the style image (or give --styles)")
    g.add_argument("-o", "--output", required=True, metavar="FIGURE.png", help="the labelled figure")
    g.add_argument("--ratios", type=_list(float, "numbers"), default=(1e-5, 1e-4, 1e-3, 1e-2), metavar="R,…",
                   help="α/β ratios, one column each (default: 1e-5,1e-4,1e-3,1e-2)")
    g.add_argument("--style-depths", type=_list(int, "integers"), default=None, metavar="1,2,…",
                   help="one row per depth d, matching the first d style layers (default: 1,2,3,4,5; with "
                   "--styles: 5)")
    g.add_argument("--styles", type=_list(str, "image paths"), default=None, metavar="A,B,…",
                   help="a content × style grid: one row per style image, instead of STYLE")
    g.add_argument("--content-layers", type=_list(str, "layer names"), default=("relu4_2",), metavar="A,…",
                   help="content layers (default: relu4_2, the paper's)")
    g.add_argument("--init", choices=("noise", "content", "style"), default="noise",
                   help="start image of every panel (default: noise, the paper's; content converges faster)")
    _add_run_arguments(g, FIGURE_DEFAULTS)
    g.set_defaults(func=cmd_grid)


def _panel_progress(ns: argparse.Namespace, labels: list[str], stop: StopOnInterrupt,
                    ) -> tuple[Progress, Callable[[StepEvent], bool]]:
    """A progress display over panels; the postfix shows the current panel's evaluation and loss."""
    progress = Progress(len(labels), unit="panel", quiet=ns.quiet)
    done = [0]

    def step(event: StepEvent) -> bool:
        advance = event.stage - done[0]  # a new panel began: the previous ones are finished
        done[0] = event.stage
        loss = event.losses.get("total", 0.0)
        progress.update(advance, panel=labels[event.stage], it=f"{event.iteration}/{event.total}", loss=loss)
        return stop.requested

    return progress, step


def _run(ns: argparse.Namespace, job: Any, labels: list[str]) -> Any:
    """Run a figure job with a progress display over its panels; Ctrl-C stops after the current evaluation."""
    with StopOnInterrupt() as stopper:
        progress, step = _panel_progress(ns, labels, stopper)
        try:
            result = job.run(on_step=step)
            progress.update(max(0, result.panels - progress.n))
        finally:
            progress.close()
    return result


def cmd_reconstruct(ns: argparse.Namespace) -> int:
    from stylegram.gatys.paper_figures import ReconstructJob

    options = options_from(ns, FIGURE_DEFAULTS)
    say(ns, f"loading {options.model} weights …")
    job = ReconstructJob(ns.kind, ns.image, ns.output, options, layers=ns.layers,
                         depths=getattr(ns, "depths", None), figure=ns.figure, device=ns.device)
    result = _run(ns, job, job.labels)
    if result.stopped:
        say(ns, f"interrupted; kept {result.panels} finished panels and the figure {result.figure}", force=True)
        return EXIT_INTERRUPTED
    say(ns, f"wrote {result.panels} panels to {ns.output} and the figure {result.figure}", force=True)
    return EXIT_OK


def cmd_grid(ns: argparse.Namespace) -> int:
    from stylegram.gatys.paper_figures import GridJob

    options = options_from(ns, FIGURE_DEFAULTS).replace(content_layers=tuple(ns.content_layers), init=ns.init)
    say(ns, f"loading {options.model} weights …")
    job = GridJob(ns.content, ns.output, options, ratios=ns.ratios, style=ns.style, styles=ns.styles,
                  style_depths=ns.style_depths, device=ns.device)
    result = _run(ns, job, job.cell_labels)
    if result.stopped:
        say(ns, f"interrupted; wrote the {result.panels} finished panels to {result.figure}", force=True)
        return EXIT_INTERRUPTED
    say(ns, f"wrote {result.figure} ({len(job.rows)}×{len(job.ratios)} panels)", force=True)
    return EXIT_OK
