"""Convolutional sparse coding against SPORCO, side by side in one process, on SPORCO's own standard problems.

    pip install -e '.[compare]'          # sporco and pyfftw: benchmark-only
    python benchmarks/bench_deconvnets.py [--device cpu|cuda] [--threads 1] [--part csc,cdl,paper] [--repeats 3]
                                          [--reference 25.083059]

Parts:
  csc    ConvBPDN on kodim23 (256×256 crop, Tikhonov high-pass), SPORCO's 36 12×12 filters 'G:12x12x36',
         λ = 0.05, RelStopTol 5e-3 (SPORCO's example cbpdn_gry.py).
  cdl    dictionary learning on five 128×128 images (barbara, kodim23, monarch, sail, tulips at zoom 0.25,
         high-passed), 64 8×8 filters from np.random.seed(12345), λ = 0.2, 200 iterations (cbpdndl_cns_gry.py).
  paper  the paper's own solver (CG z-steps, shrinkage, β continuation) on its two-layer model, learned here
         briefly on scikit-image's greyscale photos: objective against time while the camera photo is encoded
         at 256², and the time and peak memory of one alternation per layer at 1024² (no SPORCO: it has
         no such model).

Both libraries get the same images, filters and preprocessing (SPORCO's own functions make them), and every
objective printed is computed the same way (float64, at the sparse iterate). Times exclude the objective
evaluations made for the time-to-tolerance curves. Ratios > 1 mean stylegram is faster.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylegram.core import images
from stylegram.deconvnets import DeconvNet, InferenceOptions

sys.path.insert(0, str(Path(__file__).parent))
from bench_visualize import PeakRSS  # a sibling script (peak resident memory), not a package


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Clock:
    """Solver time only: the objective evaluations for the curves are taken off the clock."""

    def __init__(self) -> None:
        self.t0, self.paused = time.perf_counter(), 0.0

    def now(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def off(self, fn: Callable[[], float]) -> float:
        t = time.perf_counter()
        value = fn()
        self.paused += time.perf_counter() - t
        return value


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, f in curve if f <= target), None)


# ------------------------------------------------------------------------------------------------ csc


def csc_problem() -> tuple[np.ndarray, np.ndarray, float]:
    from sporco import signal, util

    img = util.ExampleImages().image("kodim23.png", scaled=True, gray=True, idxexp=np.s_[160:416, 60:316])
    _, sh = signal.tikhonov_filter(img, 10, 16)
    return sh, util.convdicts()["G:12x12x36"], 5e-2


def csc_objective(d: np.ndarray, x: np.ndarray, s: np.ndarray, lmbda: float) -> float:
    from stylegram.deconvnets.dictlearn import objective

    dt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(d, -1, 0)))  # (K, s, s)
    return objective(dt, torch.from_numpy(x), torch.from_numpy(s)[None], lmbda)["total"]


def run_sporco_csc(sh: np.ndarray, d: np.ndarray, lmbda: float, iters: int, tol: float,
                   curve: bool) -> tuple[float, int, float, list[tuple[float, float]]]:
    from sporco.admm import cbpdn

    points: list[tuple[float, float]] = []
    clock = Clock()

    def callback(solver: Any) -> bool:
        if curve:
            y = np.moveaxis(solver.Y.reshape((*sh.shape, d.shape[-1])), -1, 0)[None]
            points.append((clock.now(), clock.off(lambda: csc_objective(d, y, sh, lmbda))))
        return False

    opt = cbpdn.ConvBPDN.Options({"Verbose": False, "MaxMainIter": iters, "RelStopTol": tol, "AuxVarObj": False,
                                  "Callback": callback})
    clock = Clock()
    b = cbpdn.ConvBPDN(d, sh, lmbda, opt, dimK=0)
    b.solve()
    elapsed = clock.now()
    y = np.moveaxis(b.Y.reshape((*sh.shape, d.shape[-1])), -1, 0)[None]
    return elapsed, b.k, csc_objective(d, y, sh, lmbda), points


def run_stylegram_csc(sh: np.ndarray, d: np.ndarray, lmbda: float, iters: int, tol: float, curve: bool,
                      device: torch.device, dtype: torch.dtype) -> tuple[float, int, float, list[tuple[float, float]]]:
    from stylegram.deconvnets import AdmmOptions, ConvBPDN

    filters = torch.from_numpy(np.ascontiguousarray(np.moveaxis(d, -1, 0)))[:, None].to(device, dtype)
    s = torch.from_numpy(sh)[None, None].to(device, dtype)
    points: list[tuple[float, float]] = []
    _sync(device)
    clock = Clock()
    solver = ConvBPDN(filters, s, lmbda, AdmmOptions(iterations=iters, rel_tol=tol))
    for _ in range(iters):
        r, q = solver.step()
        if curve:
            _sync(device)
            points.append((clock.now(), clock.off(lambda: csc_objective(d, solver.y.cpu().double().numpy(), sh,
                                                                         lmbda))))
        if r < tol and q < tol:
            break
    _sync(device)
    elapsed = clock.now()
    return elapsed, solver.k, csc_objective(d, solver.y.cpu().double().numpy(), sh, lmbda), points


def part_csc(device: torch.device, a: argparse.Namespace) -> None:
    sh, d, lmbda = csc_problem()
    print(f"\n== ConvBPDN: {sh.shape[0]}×{sh.shape[1]}, {d.shape[-1]} filters {d.shape[0]}×{d.shape[1]}, "
          f"λ = {lmbda} ==")
    if a.reference is None:
        reference = run_stylegram_csc(sh, d, lmbda, 2000, 0.0, False, device, torch.float64)[2]
        print(f"reference objective (2000 iterations, float64): {reference:.6f}")
    else:
        reference = a.reference
        print(f"reference objective (given): {reference:.6f}")
    target = reference * (1 + 1e-3)
    # Each solver runs --repeats times, the two alternating, and its fastest run counts: on a shared machine the
    # slow runs measure the neighbours. SPORCO's first run also plans its FFTs (pyfftw); later runs reuse them.
    runs: dict[str, list[Any]] = {"sp": [], "sg": [], "spc": [], "sgc": []}
    for _ in range(a.repeats):
        runs["sp"].append(run_sporco_csc(sh, d, lmbda, 200, 5e-3, False))
        runs["sg"].append(run_stylegram_csc(sh, d, lmbda, 200, 5e-3, False, device, torch.float32))
    sp, sg = min(runs["sp"], key=lambda r: r[0]), min(runs["sg"], key=lambda r: r[0])
    _row("SPORCO", sp, reference)
    _row(f"stylegram ({device.type})", sg, reference)
    print(f"time ratio to SPORCO's stopping point: {sp[0] / sg[0]:.2f}x; per iteration "
          f"{(sp[0] / sp[1]) / (sg[0] / sg[1]):.2f}x; objective gap {100 * (sg[2] / sp[2] - 1):+.3f} % "
          f"(fastest of {a.repeats})")
    for _ in range(a.repeats):
        runs["spc"].append(run_sporco_csc(sh, d, lmbda, 400, 0.0, True)[3])
        runs["sgc"].append(run_stylegram_csc(sh, d, lmbda, 400, 0.0, True, device, torch.float32)[3])
    spc = min(runs["spc"], key=lambda c: time_to(c, target) or float("inf"))
    sgc = min(runs["sgc"], key=lambda c: time_to(c, target) or float("inf"))
    ta, tb = time_to(spc, target), time_to(sgc, target)
    print(f"time to within 1e-3 of the reference: SPORCO {_s(ta)} ({_k(spc, target)}), stylegram {_s(tb)} "
          f"({_k(sgc, target)})" + (f", ratio {ta / tb:.2f}x" if ta and tb else ""))


def _row(name: str, r: tuple[float, int, float, Any], reference: float) -> None:
    elapsed, k, obj, _ = r
    print(f"{name:>22}: {k:4d} iterations, {elapsed:7.3f} s, {1e3 * elapsed / k:7.2f} ms/iteration, objective "
          f"{obj:.6f} ({100 * (obj / reference - 1):+.3f} % of the reference)")


def _k(curve: list[tuple[float, float]], target: float) -> str:
    k = next((i for i, (_, f) in enumerate(curve, 1) if f <= target), None)
    return "not reached" if k is None else f"iteration {k}"


def _s(t: float | None) -> str:
    return "not reached" if t is None else f"{t:.3f} s"


# ------------------------------------------------------------------------------------------------ cdl


def cdl_problem() -> tuple[np.ndarray, np.ndarray, float]:
    from sporco import signal, util

    exim = util.ExampleImages(scaled=True, zoom=0.25, gray=True)
    crops = {"barbara.png": np.s_[10:522, 100:612], "kodim23.png": np.s_[:, 60:572],
             "monarch.png": np.s_[:, 160:672], "sail.png": np.s_[:, 210:722], "tulips.png": np.s_[:, 30:542]}
    s = np.dstack([exim.image(name, idxexp=idx) for name, idx in crops.items()])
    _, sh = signal.tikhonov_filter(s, 5, 16)
    np.random.seed(12345)
    return sh, np.random.randn(8, 8, 64), 0.2


def cdl_objective(d: np.ndarray, x: np.ndarray, sh: np.ndarray, lmbda: float) -> float:
    """d (K, s, s), x (B, K, N1, N2), sh (N1, N2, B)."""
    from stylegram.deconvnets.dictlearn import objective

    s = torch.from_numpy(np.ascontiguousarray(np.moveaxis(sh, -1, 0)))
    return objective(torch.from_numpy(d), torch.from_numpy(x), s, lmbda)["total"]


def run_sporco_cdl(sh: np.ndarray, d0: np.ndarray, lmbda: float, iters: int) -> tuple[float, float, list[Any]]:
    from sporco.dictlrn import cbpdndl

    points: list[tuple[float, float]] = []
    clock = Clock()

    def state(solver: Any) -> float:
        d = np.ascontiguousarray(np.moveaxis(solver.getdict().squeeze(), -1, 0))
        x = solver.getcoef().squeeze()  # (N1, N2, B, K)
        return cdl_objective(d, np.ascontiguousarray(np.transpose(x, (2, 3, 0, 1))), sh, lmbda)

    def callback(solver: Any) -> bool:
        points.append((clock.now(), clock.off(lambda: state(solver))))
        return False

    opt = cbpdndl.ConvBPDNDictLearn.Options({"Verbose": False, "MaxMainIter": iters,
                                              "CBPDN": {"rho": 50.0 * lmbda + 0.5},
                                              "CCMOD": {"rho": 10.0, "ZeroMean": True}, "Callback": callback},
                                             dmethod="cns")
    clock = Clock()
    d = cbpdndl.ConvBPDNDictLearn(d0, sh, lmbda, opt, dmethod="cns")
    d.solve()
    elapsed = clock.now()
    return elapsed, state(d), points


def run_stylegram_cdl(sh: np.ndarray, d0: np.ndarray, lmbda: float, iters: int,
                      device: torch.device) -> tuple[float, float, list[Any]]:
    from stylegram.deconvnets import ConvBPDNDictLearn, DictLearnOptions

    s = torch.from_numpy(np.ascontiguousarray(np.moveaxis(sh, -1, 0))).to(device)
    d = torch.from_numpy(np.ascontiguousarray(np.moveaxis(d0, -1, 0))).to(device, torch.float32)
    points: list[tuple[float, float]] = []

    def state() -> float:
        return cdl_objective(dl.dictionary.cpu().double().numpy(), dl.coefficients.cpu().double().numpy(), sh,
                             lmbda)

    _sync(device)
    clock = Clock()
    dl = ConvBPDNDictLearn(d, s, lmbda, DictLearnOptions(iterations=iters))
    for _ in range(iters):
        dl.step()
        _sync(device)
        points.append((clock.now(), clock.off(state)))
    elapsed = clock.now()
    return elapsed, state(), points


def part_cdl(device: torch.device, a: argparse.Namespace) -> None:
    sh, d0, lmbda = cdl_problem()
    print(f"\n== dictionary learning: {sh.shape[-1]} images {sh.shape[0]}×{sh.shape[1]}, {d0.shape[-1]} filters "
          f"{d0.shape[0]}×{d0.shape[1]}, λ = {lmbda}, 200 iterations ==")
    sp = run_sporco_cdl(sh, d0, lmbda, 200)
    sg = run_stylegram_cdl(sh, d0, lmbda, 200, device)
    best = min(min(f for _, f in sp[2]), min(f for _, f in sg[2]))
    target = best * (1 + 1e-3)
    for name, r in (("SPORCO", sp), (f"stylegram ({device.type})", sg)):
        print(f"{name:>22}: {r[0]:8.2f} s, {1e3 * r[0] / 200:7.1f} ms/iteration, final objective {r[1]:.4f}, "
              f"time to within 1e-3 of the best seen ({best:.4f}): {_s(time_to(r[2], target))}")
    print(f"time ratio {sp[0] / sg[0]:.2f}x; objective gap {100 * (sg[1] / sp[1] - 1):+.3f} %")


# ------------------------------------------------------------------------------------------------ paper


def part_paper(device: torch.device, a: argparse.Namespace) -> None:
    """The paper's own solver on its two-layer model: objective against time while one image is encoded, and
    the time and peak memory of one alternation per layer on a 1024×1024 input (the full schedule there is
    ~30 CPU minutes; the memory does not depend on the number of alternations). The model is learned here,
    briefly, on scikit-image's greyscale photos (filters that have seen images, not random ones)."""
    from skimage import data

    from stylegram.deconvnets import PAPER_LAYERS, InferenceOptions, LearnOptions, learn

    photos = [Image.fromarray(getattr(data, n)()) for n in ("camera", "moon", "brick", "grass", "gravel", "coins")]
    t0 = time.perf_counter()
    model = learn(photos, PAPER_LAYERS, LearnOptions(iterations=a.paper_epochs, size=96), device=device)
    print(f"\n== the paper's solver: two layers {[s.maps for s in PAPER_LAYERS]} maps, "
          f"{PAPER_LAYERS[0].filter}×{PAPER_LAYERS[0].filter} filters, learned on 6 photos at 96 px, "
          f"{a.paper_epochs} epochs per layer, in {time.perf_counter() - t0:.1f} s ==")
    for side in a.paper_sizes:
        _encode(model, photos[0], side, device, None)
    one = InferenceOptions(beta0=1.0, beta_max=1.0, alternations=1)
    for side in a.paper_memory_sizes:
        _encode(model, photos[0], side, device, one)


def _encode(model: DeconvNet, photo: Image.Image, side: int, device: torch.device,
            inference: InferenceOptions | None) -> None:
    """Encode ``photo`` at side² with both layers: time, peak memory and, for the model's own schedule
    (``inference`` None), the objective against time."""
    from stylegram.core.events import StepEvent

    image = images.to_tensor(photo.convert("RGB").resize((side, side), Image.Resampling.BICUBIC))
    events: list[tuple[int, StepEvent]] = []

    def record(e: StepEvent) -> bool:
        events.append((e.stage + 1, e))
        return False

    _sync(device)
    with PeakRSS() as peak:
        t = time.perf_counter()
        code = model.encode(image.to(device), on_step=record, inference=inference)
        _sync(device)
        elapsed = time.perf_counter() - t
    mem = (f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda"
           else f"peak resident-memory growth {peak.growth_mib:.0f} MiB")
    if inference is not None:
        print(f"\n{side}×{side} camera, one z/x alternation per layer: {elapsed:.2f} s, {mem}")
        return
    print(f"\n{side}×{side} camera: {elapsed:.2f} s for both layers (objective evaluations included), {mem}")
    print("| layer | alternation | β | seconds (in the layer) | objective | non-zero |")
    print("|---|---|---|---|---|---|")
    for stage in dict.fromkeys(s for s, _ in events):
        mine = [e for s, e in events if s == stage]
        for i in sorted({0, len(mine) - 1, *range(0, len(mine), max(1, len(mine) // 6))}):
            e = mine[i]
            print(f"| {stage} | {e.iteration} | {e.losses['beta']:g} | {e.elapsed:.2f} | "
                  f"{e.losses['total']:.5g} | {e.losses['nonzero']:.3f} |")
    for i, layer in enumerate(code.layers, 1):
        print(f"layer {i}: final objective {layer.terms['total']:.5g}, non-zero {layer.terms['nonzero']:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    p.add_argument("--part", default="csc,cdl,paper")
    p.add_argument("--repeats", type=int, default=1, help="runs of each solver in the csc part; the fastest counts")
    p.add_argument("--paper-sizes", type=lambda v: [int(x) for x in v.split(",")], default=[256],
                   help="image sides encoded with the full schedule in the paper part (default 256)")
    p.add_argument("--paper-memory-sizes", type=lambda v: [int(x) for x in v.split(",")], default=[1024],
                   help="image sides encoded with one alternation per layer, for time and memory (default 1024)")
    p.add_argument("--paper-epochs", type=int, default=2, help="epochs per layer of the paper part's model")
    p.add_argument("--reference", type=float, help="the csc reference objective, if known (skips its 2000 iterations)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    device = torch.device(a.device)
    parts: dict[str, Callable[[torch.device, argparse.Namespace], None]] = {
        "csc": part_csc, "cdl": part_cdl, "paper": part_paper}
    print(f"torch {torch.__version__}, {a.threads} thread(s), device {device}")
    for name in a.part.split(","):
        parts[name](device, a)


if __name__ == "__main__":
    main()
