"""Convolutional sparse coding against SPORCO, side by side in one process, on SPORCO's own standard problems.

    pip install -e '.[compare]'          # sporco and pyfftw: benchmark-only
    python benchmarks/bench_deconvnets.py [--device cpu|cuda] [--threads 1] [--part csc,cdl,paper]

Parts:
  csc    ConvBPDN on kodim23 (256×256 crop, Tikhonov high-pass), SPORCO's 36 12×12 filters 'G:12x12x36',
         λ = 0.05, RelStopTol 5e-3 (SPORCO's example cbpdn_gry.py).
  cdl    dictionary learning on five 128×128 images (barbara, kodim23, monarch, sail, tulips at zoom 0.25,
         high-passed), 64 8×8 filters from np.random.seed(12345), λ = 0.2, 200 iterations (cbpdndl_cns_gry.py).

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


def part_cdl(device: torch.device) -> None:
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    p.add_argument("--part", default="csc,cdl")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    device = torch.device(a.device)
    parts: dict[str, Callable[[torch.device], None]] = {"csc": part_csc, "cdl": part_cdl}
    print(f"torch {torch.__version__}, {a.threads} thread(s), device {device}")
    for name in a.part.split(","):
        parts[name](device)


if __name__ == "__main__":
    main()
