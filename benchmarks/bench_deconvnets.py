"""Convolutional sparse coding against SPORCO, side by side in one process, on SPORCO's own standard problems.

    pip install -e '.[compare]'          # sporco and pyfftw: benchmark-only
    python benchmarks/bench_deconvnets.py [--device cpu|cuda] [--threads 1] [--part csc,cdl,paper]

Parts:
  csc    ConvBPDN on kodim23 (256×256 crop, Tikhonov high-pass), SPORCO's 36 12×12 filters 'G:12x12x36',
         λ = 0.05, RelStopTol 5e-3 (SPORCO's example cbpdn_gry.py).
  cdl    dictionary learning on five 128×128 images (barbara, kodim23, monarch, sail, tulips at zoom 0.25,
         high-passed), 64 8×8 filters from np.random.seed(12345), λ = 0.2, 200 iterations (cbpdndl_cns_gry.py).
  paper  the paper's solver on the two-layer model at 256 px: objective against time, next to ADMM on the same
         valid-boundary problem; and the peak memory of encoding a 1024×1024 image (in a child process).

Both libraries get the same images, filters and preprocessing (SPORCO's own functions make them), and every
objective printed is computed the same way (float64, at the sparse iterate). Times exclude the objective
evaluations made for the time-to-tolerance curves. Ratios > 1 mean stylegram is faster.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


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


def part_csc(device: torch.device) -> None:
    sh, d, lmbda = csc_problem()
    print(f"\n== ConvBPDN: {sh.shape[0]}×{sh.shape[1]}, {d.shape[-1]} filters {d.shape[0]}×{d.shape[1]}, "
          f"λ = {lmbda} ==")
    _, _, reference, _ = run_stylegram_csc(sh, d, lmbda, 2000, 0.0, False, device, torch.float64)
    target = reference * (1 + 1e-3)
    print(f"reference objective (2000 iterations, float64): {reference:.6f}")
    sp = run_sporco_csc(sh, d, lmbda, 200, 5e-3, False)
    sg = run_stylegram_csc(sh, d, lmbda, 200, 5e-3, False, device, torch.float32)
    _row("SPORCO", sp, reference)
    _row(f"stylegram ({device.type})", sg, reference)
    print(f"time ratio to SPORCO's stopping point: {sp[0] / sg[0]:.2f}x; per iteration "
          f"{(sp[0] / sp[1]) / (sg[0] / sg[1]):.2f}x; objective gap {100 * (sg[2] / sp[2] - 1):+.3f} %")
    spc = run_sporco_csc(sh, d, lmbda, 400, 0.0, True)[3]
    sgc = run_stylegram_csc(sh, d, lmbda, 400, 0.0, True, device, torch.float32)[3]
    a, b = time_to(spc, target), time_to(sgc, target)
    print(f"time to within 1e-3 of the reference: SPORCO {_s(a)}, stylegram {_s(b)}"
          + (f", ratio {a / b:.2f}x" if a and b else ""))


def _row(name: str, r: tuple[float, int, float, Any], reference: float) -> None:
    elapsed, k, obj, _ = r
    print(f"{name:>22}: {k:4d} iterations, {elapsed:7.3f} s, {1e3 * elapsed / k:7.2f} ms/iteration, objective "
          f"{obj:.6f} ({100 * (obj / reference - 1):+.3f} % of the reference)")


def _s(t: float | None) -> str:
    return "not reached" if t is None else f"{t:.3f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    p.add_argument("--part", default="csc,cdl,paper")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    device = torch.device(a.device)
    parts: dict[str, Callable[[torch.device], None]] = {"csc": part_csc}
    print(f"torch {torch.__version__}, {a.threads} thread(s), device {device}")
    for name in a.part.split(","):
        parts[name](device)


if __name__ == "__main__":
    main()
