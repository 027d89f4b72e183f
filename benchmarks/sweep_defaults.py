"""The sweep behind stylegram's defaults: options × pairs, each output scored by bench_defaults' one yardstick.

    .venv/bin/python benchmarks/sweep_defaults.py --size 256 --iterations 300 \\
        --grid 'style_strength=0.4,0.5,0.6;tv_weight=0.3,1,3' [--pairs tubingen:starry_night,…] [--out out/sweep]

Every combination of the grid's values (``field=v1,v2;field=…``, fields of GatysOptions; a tuple field takes
``/``-separated items, e.g. ``style_layer_weights=1/1/1/1/1,8/4/2/1/1``) runs on every pair, in this process,
with stylegram's library call. Each line printed (and appended to OUT/sweep.jsonl) holds the options, the pair,
the yardstick (style loss, content loss, TV) and the seconds. Images are saved so they can be looked at too.

Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_defaults import PAIRS, score
from stylegram.core import images
from stylegram.core.options import describe
from stylegram.gatys import GatysOptions, multiscale
from stylegram.weights import load_vgg


def parse_grid(text: str) -> list[dict[str, Any]]:
    fields = {f.name: f for f in describe(GatysOptions)}
    axes = []
    for part in filter(None, text.split(";")):
        name, _, values = part.partition("=")
        f = fields[name.strip()]
        axes.append([(f.name, f.parse(v.replace("/", ","))) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--pairs", default=PAIRS)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--grid", default="")
    ap.add_argument("--out", type=Path, default=Path("out/sweep"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    evaluator, _ = load_vgg("vgg16-caffe", pooling="avg")
    nets = {}
    for changes in parse_grid(args.grid) or [{}]:
        options = GatysOptions(size=args.size, iterations=args.iterations).replace(**changes)
        if options.pooling not in nets:
            nets[options.pooling] = load_vgg(options.model, pooling=options.pooling)[0]
        for pair in args.pairs.split(","):
            photo, painting = pair.split(":")
            content = next((args.shared / "images").glob(f"{photo}.*"))
            style = next((args.shared / "images").glob(f"{painting}.*"))
            t0 = time.perf_counter()
            result = multiscale.run(nets[options.pooling], images.load_image(content), [images.load_image(style)],
                                    options)
            seconds = time.perf_counter() - t0
            tag = "_".join(f"{k}-{v}" for k, v in changes.items()).replace(",", "-").replace(" ", "")
            path = args.out / f"{photo}_{painting}_{args.size}_{tag or 'defaults'}.png"
            images.save_image(images.to_pil(result.image), path, {"options": options.to_dict()})
            yard = score(evaluator, path, content, style)
            line = {"pair": pair, "size": args.size, "changes": {k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in changes.items()},
                    **yard, "seconds": round(seconds, 1), "image": str(path)}
            print(json.dumps(line), flush=True)
            with (args.out / "sweep.jsonl").open("a") as f:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
