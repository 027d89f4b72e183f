"""Coarse-to-fine against single-scale Gatys: the time each takes to reach the same loss at the target size.

    .venv/bin/python benchmarks/bench_multiscale.py [--size 1024] [--iterations 200] [--every 5]

Both runs get the offline VGG16 (average pooling), ../shared/images/tubingen.jpg and starry_night.jpg, the
default options and the content start. Single-scale runs ``iterations`` evaluations at ``size``; coarse-to-fine
runs ``iterations`` at ``size / 2`` and ``iterations / 2`` at ``size`` (the default plan). Every ``every``
evaluations the current image is copied with its wall-clock time since the run began (target computation and
re-preparing images at each stage included). Afterwards every copy, upsampled to the target size where it comes
from the coarse stage, is scored by ONE evaluator: the single-scale objective at the target size. Printed: the
loss both runs reach (the larger of their final losses), the time each needs to reach it, and the ratio.

Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from stylegram.core import images
from stylegram.core.events import StepEvent
from stylegram.gatys import GatysOptions, Objective, compute_targets, multiscale, prepare
from stylegram.nets.vgg import VGG
from stylegram.weights import load_vgg

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

Trace = list[tuple[float, float, torch.Tensor]]  # (seconds since the run began, work so far, image)


def traced_run(vgg: VGG, content: object, style: object, options: GatysOptions, every: int) -> Trace:
    """The run's images every ``every`` evaluations, with wall time and *work*: evaluations counted in units of
    one evaluation at the target size (a stage at half the size counts ¼ each, by its pixels). Work does not
    depend on what else the machine runs, so it gives a load-independent ratio beside the wall-clock one."""
    trace: Trace = []
    sizes = [st.size for st in multiscale.plan(options)]
    work = [0.0]
    t0 = time.perf_counter()

    def keep(e: StepEvent) -> None:
        work[0] += (sizes[e.stage] / options.size) ** 2
        if e.iteration % every == 0 or e.iteration == e.total:
            trace.append((time.perf_counter() - t0, work[0], e.image()))

    result = multiscale.run(vgg, content, [style], options, on_step=keep)  # type: ignore[arg-type]
    trace.append((time.perf_counter() - t0, work[0], result.image))  # the best image, as returned
    return trace


def scored(objective: Objective, trace: Trace, shape: torch.Size) -> list[tuple[float, float, float]]:
    out = []
    with torch.no_grad():
        for t, work, image in trace:
            x = multiscale.upsample(image, shape) if image.shape[-2:] != shape else image
            out.append((t, work, float(objective(x)["total"])))
    return out


def time_to(losses: list[tuple[float, float, float]], level: float) -> tuple[float, float]:
    return next((t, work) for t, work, loss in losses if loss <= level * (1 + 1e-6))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--iterations", type=int, default=200, help="evaluations of single-scale and of the coarse stage")
    p.add_argument("--every", type=int, default=5, help="copy the image every N evaluations")
    p.add_argument("--shared", type=Path, default=SHARED)
    args = p.parse_args()
    vgg, info = load_vgg("vgg16-caffe", pooling="avg")
    content = images.load_image(args.shared / "images" / "tubingen.jpg")
    style = images.load_image(args.shared / "images" / "starry_night.jpg")
    base = GatysOptions(size=args.size, iterations=args.iterations).resolved(torch.device("cpu"))
    single, coarse = base.replace(multiscale=False), base.replace(coarse_size=(args.size + 1) // 2)
    c, s = prepare(content, [style], base)
    objective = Objective(vgg, compute_targets(vgg, c, s, base), base)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {base.precision}; "
          f"weights {info.source}")
    print(f"single-scale: {args.iterations} at {args.size} px; coarse-to-fine: "
          + ", ".join(f"{st.iterations} at {st.size} px" for st in multiscale.plan(coarse)))
    runs = {}
    with torch.no_grad():
        start = objective(c)["total"].item()
    for name, options in (("single-scale", single), ("coarse-to-fine", coarse)):
        runs[name] = scored(objective, traced_run(vgg, content, style, options, args.every), c.shape[-2:])
        t, _, loss = runs[name][-1]
        trail = ", ".join(f"{loss:.3g}@{t:.0f}s" for t, _, loss in runs[name][:: max(1, len(runs[name]) // 8)])
        print(f"  {name:15s} {t:7.1f} s, final loss {loss:.4g} (start {start:.4g}); loss@time: {trail}")
    level = max(r[-1][2] for r in runs.values())
    (t_single, w_single), (t_multi, w_multi) = time_to(runs["single-scale"], level), time_to(runs["coarse-to-fine"],
                                                                                             level)
    print(f"loss both reach: {level:.4g}; time to reach it: single-scale {t_single:.1f} s, "
          f"coarse-to-fine {t_multi:.1f} s; speed-up {t_single / t_multi:.2f}x")
    print(f"work to reach it (in {args.size} px evaluations): single-scale {w_single:.1f}, coarse-to-fine "
          f"{w_multi:.1f}; speed-up {w_single / w_multi:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
