"""Command-line subcommands for figures of the representations: reconstruct, grid.

Each subcommand sets ``func`` (taking the parsed namespace, returning an exit code); errors the user can fix
are raised as :class:`stylegram.cli.UsageError`, ImageError or WeightsError and become exit code 2.

* ``stylegram reconstruct content IMAGE -o DIR``: white-noise reconstructions from single layers (Figure 1).
* ``stylegram reconstruct style IMAGE -o DIR``: textures from growing subsets of style layers (Figure 1).
* ``stylegram grid CONTENT STYLE -o FIGURE.png``: style-layer subsets × α/β ratios (Figure 3), or with
  ``--styles A,B,…`` styles × ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stylegram.cli.common import EXIT_INTERRUPTED, EXIT_OK, StopOnInterrupt, UsageError
from stylegram.core import images
from stylegram.core.record import describe_file as describe_input
from stylegram.gatys import GatysOptions
from stylegram.gatys.reconstruct import CONTENT_LAYERS, STYLE_LAYERS

NORMALIZED_MODEL = "vgg16-caffe-normalized"
# Small enough for a CPU: 5 panels of 256 px at 300 evaluations take minutes, not hours. All overridable.
FIGURE_DEFAULTS = GatysOptions(size=256, iterations=300)
_RUN_FIELDS = ("size", "iterations", "seed", "pooling", "optimizer", "precision", "model", "weights")


def _list(kind: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            items = tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}") from None
        if not items:
            raise argparse.ArgumentTypeError(f"expected at least one {what}")
        return items

    return parse


def _add_run_arguments(p: argparse.ArgumentParser, base: GatysOptions) -> None:
    """The optimisation flags shared with ``stylize``, their help taken from :class:`GatysOptions`."""
    fields = {f.name: f for f in dataclasses.fields(GatysOptions)}
    for name in _RUN_FIELDS:
        f, default = fields[name], getattr(base, name)
        flag, text = "--" + name.replace("_", "-"), f"{f.metadata['help']} (default: {default})"
        if name in ("pooling", "optimizer", "precision"):
            choices = {"pooling": ("avg", "max"), "optimizer": ("lbfgs", "adam"),
                       "precision": ("auto", "float32", "bfloat16")}[name]
            p.add_argument(flag, choices=choices, default=default, help=text)
        elif name in ("model", "weights"):
            extra = f"; {NORMALIZED_MODEL} is VGG16 with each filter's mean activation rescaled to 1, as in the paper"
            p.add_argument(flag, default=default, help=text + (extra if name == "model" else ""))
        else:
            p.add_argument(flag, type=int, default=default, help=text)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _options(ns: argparse.Namespace) -> GatysOptions:
    try:
        return FIGURE_DEFAULTS.replace(**{name: getattr(ns, name) for name in _RUN_FIELDS})
    except ValueError as e:
        raise UsageError(str(e)) from None


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


# ---------------------------------------------------------------------------------------------------------------


def _load_network(options: GatysOptions, ns: argparse.Namespace) -> tuple[Any, dict[str, Any], Any]:
    """(VGG, its metadata record, device) for ``options.model``."""
    import torch

    from stylegram.weights import load_vgg

    device = torch.device(ns.device) if ns.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _say(ns, f"loading {options.model} weights …")
    vgg, info = load_vgg(options.model, path=options.weights, pooling=options.pooling, classifier=False,
                         device=device)
    return vgg, {"id": info.source, "sha256": info.sha256}, device


def _meta(ns: argparse.Namespace, method: str, weights: dict[str, Any], device: Any, **extra: Any) -> dict[str, Any]:
    import torch

    from stylegram import __version__

    return {"stylegram": __version__, "method": method, "weights": weights, "device": str(device),
            "torch": torch.__version__, **extra}


class _PanelProgress:
    """A tqdm bar over panels; the postfix shows the current panel's evaluation and loss."""

    def __init__(self, ns: argparse.Namespace, panels: int, labels: Sequence[str], stop: StopOnInterrupt) -> None:
        from tqdm import tqdm

        self.labels, self.stop, self.done = list(labels), stop, 0
        self.bar = tqdm(total=panels, disable=ns.quiet, unit="panel", dynamic_ncols=True, file=sys.stderr)

    def step(self, event: Any) -> bool:
        if event.stage > self.done:  # a new panel began: the previous ones are finished
            self.bar.update(event.stage - self.done)
            self.done = event.stage
        loss = event.losses.get("total", 0.0)
        self.bar.set_postfix_str(f"{self.labels[event.stage]}: {event.iteration}/{event.total} loss {loss:.3g}")
        return self.stop.requested

    def close(self, finished: int) -> None:
        self.bar.update(max(0, finished - self.done))
        self.bar.close()


def cmd_reconstruct(ns: argparse.Namespace) -> int:
    from stylegram.gatys import prepare
    from stylegram.gatys.reconstruct import reconstruct_content, reconstruct_style, style_subsets, subset_label

    options = _options(ns)
    out_dir = Path(ns.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o must be a folder, and '{ns.output}' is a file")
    try:
        subsets = ([(layer,) for layer in ns.layers] if ns.kind == "content"
                   else style_subsets(ns.depths or range(1, len(ns.layers) + 1), ns.layers))
    except ValueError as e:
        raise UsageError(str(e)) from None
    labels = [subset_label(s) for s in subsets]
    names = [f"{ns.kind}_{'-'.join((s[0], s[-1]) if len(s) > 1 else s)}.png" for s in subsets]
    figure = images.check_output(ns.figure or out_dir / f"{ns.kind}_figure.png", [ns.image])
    for name in names:
        images.check_output(out_dir / name, [ns.image])
    source = images.load_image(ns.image)
    vgg, weights, device = _load_network(options, ns)
    _check_layers(vgg, [layer for s in subsets for layer in s])
    target, _ = prepare(source, [], options, device)
    with StopOnInterrupt() as stopper:
        progress = _PanelProgress(ns, len(subsets), labels, stopper)
        if ns.kind == "content":
            panels = reconstruct_content(vgg, target, ns.layers, options, on_step=progress.step)
        else:
            panels = reconstruct_style(vgg, target, subsets, options, on_step=progress.step)
        progress.close(len(panels))
    meta = _meta(ns, f"reconstruct-{ns.kind}", weights, device, inputs={"image": describe_input(ns.image)})
    for panel, name in zip(panels, names, strict=False):
        images.save_image(images.to_pil(panel.image), out_dir / name, {
            **meta, "layers": list(panel.layers), "options": panel.result.options.to_dict(),
            "iterations": panel.result.iterations, "losses": panel.result.losses,
            "seconds": round(panel.result.elapsed, 2), "interrupted": panel.result.stopped})
    return _write_figure(ns, figure, [images.to_pil(target)] + [images.to_pil(p.image) for p in panels],
                         ["input", *(p.label for p in panels)], meta, options, len(panels) < len(subsets))


def _check_layers(vgg: Any, layers: Sequence[str]) -> None:
    try:
        for layer in layers:
            vgg.spec(layer)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _write_figure(ns: argparse.Namespace, path: Path, panels: list[Any], labels: list[str], meta: dict[str, Any],
                  options: GatysOptions, interrupted: bool) -> int:
    from stylegram.core.figures import panel_row

    fig = panel_row(panels, labels)
    images.save_image(fig.image, path, {**meta, "options": options.to_dict(), "panels": labels[1:],
                                        "interrupted": interrupted})
    if interrupted:
        _say(ns, f"interrupted; kept {len(panels) - 1} finished panels and the figure {path}", force=True)
        return EXIT_INTERRUPTED
    _say(ns, f"wrote {len(panels) - 1} panels to {ns.output} and the figure {path}", force=True)
    return EXIT_OK


def _ratio_label(ratio: float) -> str:
    # Spelled out: Pillow's bundled font has no Greek glyphs.
    return f"alpha/beta = {ratio:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _grid_rows(ns: argparse.Namespace) -> tuple[list[str], list[tuple[str, ...]], list[str]]:
    """(style file per row, style layers per row, row labels) from STYLE/--styles and --style-depths."""
    from stylegram.gatys.reconstruct import style_subsets, subset_label

    if (ns.style is None) == (ns.styles is None):
        raise UsageError("give one STYLE image or --styles A,B,…, not both" if ns.style else
                         "give a STYLE image or --styles A,B,…")
    try:
        if ns.style is not None:
            subsets = style_subsets(ns.style_depths or (1, 2, 3, 4, 5))
            return [ns.style] * len(subsets), subsets, [subset_label(s) for s in subsets]
        depths = ns.style_depths or (5,)
        if len(depths) != 1:
            raise UsageError("with --styles give one --style-depths (rows are the style images)")
        layers = style_subsets(depths)[0]
        return list(ns.styles), [layers] * len(ns.styles), [Path(f).stem for f in ns.styles]
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_grid(ns: argparse.Namespace) -> int:
    from stylegram.core.figures import panel_grid
    from stylegram.gatys import check, prepare
    from stylegram.gatys.reconstruct import tradeoff_grid

    options = _options(ns).replace(content_layers=tuple(ns.content_layers), init=ns.init)
    if any(r <= 0 for r in ns.ratios):
        raise UsageError("every α/β ratio must be > 0")
    style_files, layer_rows, row_labels = _grid_rows(ns)
    out = images.check_output(ns.output, [ns.content, *style_files])
    content_img = images.load_image(ns.content)
    loaded = {f: images.load_image(f) for f in dict.fromkeys(style_files)}
    vgg, weights, device = _load_network(options, ns)
    try:
        check(vgg, options.replace(style_layers=layer_rows[-1]), 1)
    except ValueError as e:
        raise UsageError(str(e)) from None
    content, styles = prepare(content_img, list(loaded.values()), options, device)
    by_file = dict(zip(loaded, styles, strict=True))
    col_labels = [_ratio_label(r) for r in ns.ratios]
    cell_labels = [f"{r}, {c}" for r in row_labels for c in col_labels]
    with StopOnInterrupt() as stopper:
        progress = _PanelProgress(ns, len(cell_labels), cell_labels, stopper)
        rows = [(by_file[f], layers) for f, layers in zip(style_files, layer_rows, strict=True)]
        cells = tradeoff_grid(vgg, content, rows, ns.ratios, options, on_step=progress.step)
        progress.close(len(cells))
    blank = images.to_pil(content.new_ones(content.shape))
    grid = [[blank for _ in ns.ratios] for _ in rows]
    for cell in cells:
        grid[cell.row][cell.column] = images.to_pil(cell.result.image)
    fig = panel_grid(grid, row_labels, col_labels)
    inputs = {"content": describe_input(ns.content), "styles": [describe_input(f) for f in loaded]}
    meta = _meta(ns, "gatys-grid", weights, device, inputs=inputs, options=options.to_dict(),
                 ratios=list(ns.ratios), rows=row_labels, style_layers=[list(x) for x in layer_rows],
                 cells=[{"row": c.row, "column": c.column, "losses": c.result.losses,
                         "iterations": c.result.iterations, "seconds": round(c.result.elapsed, 2)} for c in cells],
                 interrupted=len(cells) < len(cell_labels))
    images.save_image(fig.image, out, meta)
    if len(cells) < len(cell_labels):
        _say(ns, f"interrupted; wrote the {len(cells)} finished panels to {out}", force=True)
        return EXIT_INTERRUPTED
    _say(ns, f"wrote {out} ({len(rows)}×{len(ns.ratios)} panels)", force=True)
    return EXIT_OK


def _say(ns: argparse.Namespace, text: str, force: bool = False) -> None:
    if force or not getattr(ns, "quiet", False):
        print(text, file=sys.stderr)
