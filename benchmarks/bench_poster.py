"""A poster-size print on this machine: coarse-to-fine up to 4096 px, the top stage tiled; time and peak memory.

    .venv/bin/python benchmarks/bench_poster.py [--size 4096] [--stage-iterations 300,100,40,10]
        [--max-memory 14GiB] [-o /tmp/poster.png]

Content ../shared/images/tubingen.jpg, style starry_night.jpg, the default options otherwise (offline VGG16,
average pooling, precision auto). Printed for each stage: its size, how it ran (whole or in tiles), its
evaluations, seconds and seconds per evaluation, the time since the start when it ended, and the peak resident
memory of the process so far (ru_maxrss: the weights, the Python runtime and everything else included). The end
of the 2048 px stage is where a 2048 px print with the same stage iterations would end.

Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

from stylegram.core import images, units
from stylegram.core.events import StepEvent
from stylegram.gatys import GatysOptions, memory, multiscale, tiled
from stylegram.weights import load_vgg

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--stage-iterations", default="300,100,40,10")
    p.add_argument("--max-memory", default="14GiB", help="the budget the tiles are sized for")
    p.add_argument("--content", default=str(SHARED / "images" / "tubingen.jpg"))
    p.add_argument("--style", default=str(SHARED / "images" / "starry_night.jpg"))
    p.add_argument("-o", "--output", type=Path, default=Path("/tmp/poster.png"))
    args = p.parse_args()

    budget = units.parse_size(args.max_memory)
    stages_its = tuple(int(n) for n in args.stage_iterations.split(","))
    options = GatysOptions(size=args.size, stage_iterations=stages_its).resolved(torch.device("cpu"))
    content, style = images.load_image(args.content), images.load_image(args.style)
    vgg, _ = load_vgg(options.model, pooling=options.pooling)
    stages = multiscale.plan(options)
    print(f"{args.size} px from {Path(args.content).name} and {Path(args.style).name}; precision "
          f"{options.precision}; budget {units.format_size(budget)}; {torch.get_num_threads()} threads")
    for st in stages:
        staged = options.replace(size=st.size, iterations=st.iterations)
        setup = memory.plan(staged, content.size, budget, arch=vgg.arch)
        assert setup is not None, "does not fit the budget"
        h, w = memory.output_shape(content.size, st.size)
        how = "whole" if setup.tiling is None else f"{len(tiled.boxes(h, w, setup.tiling))} tiles"
        print(f"  stage {w}×{h}: {how}, history {setup.history}, {st.iterations} evaluations, "
              f"estimated peak {units.format_size(setup.estimate.total)}")

    t0 = time.perf_counter()
    marks: dict[int, list[float]] = {}

    def step(e: StepEvent) -> None:
        marks.setdefault(e.stage, []).append(time.perf_counter() - t0)
        if e.iteration == e.total:
            times = marks[e.stage]
            began = marks[e.stage - 1][-1] if e.stage > 0 else 0.0
            took = times[-1] - began
            print(f"stage {e.stage + 1}/{e.stages} ({stages[e.stage].size} px): {e.total} evaluations in "
                  f"{took:.0f} s ({took / e.total:.1f} s each, targets included); {times[-1] / 60:.1f} min since "
                  f"the start; peak memory so far {units.format_size(peak_rss())}; loss {e.losses['total']:.4g}",
                  flush=True)

    result = multiscale.run(vgg, content, [style], options, on_step=step, max_memory=budget)
    elapsed = time.perf_counter() - t0
    images.save_image(images.to_pil(result.image), args.output, {"benchmark": "bench_poster"})
    h, w = result.image.shape[-2:]
    print(f"done: {w}×{h} px in {elapsed / 60:.1f} min, {result.tiles} tiles at the top stage, peak memory "
          f"{units.format_size(peak_rss())} ({peak_rss() / 2**30:.2f} GiB); wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
