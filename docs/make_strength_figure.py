"""Rebuild docs/strength_sizes.png: one style strength at three sizes (256, 512, 1024 px), shown at one height.

    .venv/bin/python docs/make_strength_figure.py [--preset balanced] [--sizes 256,512,1024] [--iterations N]

The demo's pair (scikit-image's astronaut, the generated painting), stylegram's defaults but the size. Every
panel is shown at the same height, so what should match is the look: how much of the painting's palette and
strokes sits over how much of the photo. Printed per size: the two normalised terms at the end of the run, the
content term ‖F − P‖²/‖P‖² and the style term Σ w_l E_l / Σ w_l E_l⁰ (what the relative objective weighs, so the
same strength should give the same pair of numbers at every size), the evaluations and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

from stylegram.core import images
from stylegram.core.events import StepEvent
from stylegram.core.figures import panel_row
from stylegram.core.samples import demo_content, generated_painting
from stylegram.gatys.options import PRESETS, GatysOptions
from stylegram.gatys.stylize import stylize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("strength_sizes.png"))
    ap.add_argument("--height", type=int, default=384, help="display height of every panel")
    ap.add_argument("--iterations", type=int, default=None,
                    help="loss evaluations (default: the preset's, 500); a 1024 px run costs 3× a 512 px one")
    args = ap.parse_args()

    overrides = {} if args.iterations is None else {"iterations": args.iterations}
    base = GatysOptions.from_preset(args.preset).replace(**overrides)
    content, painting = demo_content(), generated_painting(384, seed=7)
    panels: list[Image.Image] = []
    labels: list[str] = []
    for size in (int(s) for s in args.sizes.split(",")):
        opts = base.replace(size=size)
        last: list[StepEvent] = []

        def keep(event: StepEvent, last: list[StepEvent] = last) -> None:
            if event.stage == event.stages - 1:
                last[:] = [event]

        t0 = time.perf_counter()
        out = stylize(content, painting, on_step=keep, size=size, **{**PRESETS[args.preset], **overrides})
        seconds = time.perf_counter() - t0
        terms = last[0].losses
        rel_content = terms["content"] / opts.content_weight
        rel_style = terms["style"] / opts.beta
        print(f"{size:5d} px  content ‖F−P‖²/‖P‖² {rel_content:.3f}   style ΣwE/ΣwE⁰ {rel_style:.4f}   "
              f"{last[0].iteration} evaluations in the last stage, {seconds:.0f} s", flush=True)
        panels.append(out.resize((round(out.width * args.height / out.height), args.height), Image.LANCZOS))
        labels.append(f"{size} px: content {rel_content:.2f}, style {rel_style:.2g}")
    # In ASCII: Pillow's bundled font has no Greek letters.
    title = f"preset {args.preset} (beta = {base.beta:.3g}, {base.iterations} evaluations) at three sizes"
    figure = panel_row(panels, labels, title=title)
    images.save_image(figure.image, args.output, {"figure": "strength_sizes", "preset": args.preset,
                                                  "sizes": args.sizes, "iterations": str(base.iterations)})


if __name__ == "__main__":
    main()
