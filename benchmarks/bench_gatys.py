"""Speed and memory of stylegram's Gatys loop against the textbook baseline, measured in one process.

    .venv/bin/python benchmarks/bench_gatys.py [--sizes 256,512] [--evals 12] [--repeats 2]

Both implementations get the same network (the offline VGG16, average pooling, as an nn.Sequential for the
baseline), the same images (../shared/images/tubingen.jpg and starry_night.jpg), the same loss layers (the
paper's: content conv4_2, style conv1_1 … conv5_1, in the baseline's conv_N naming) and the same number of
loss evaluations, and run alternately so that machine noise falls on both. Printed per size:

* seconds per loss evaluation for each (from each implementation's own per-evaluation time stamps, so set-up
  and target computation are left out), and the ratio baseline / stylegram;
* FLOPs per evaluation (from the layer shapes) and GFLOP/s as a percentage of a matrix-multiply peak
  measured in the same run (float32; bfloat16 peak too where stylegram runs in bfloat16);
* peak memory of each: the resident-set growth above the level before the run, sampled every millisecond,
  with freed heap returned to the system (malloc_trim) between runs.

Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stylegram.core import images
from stylegram.gatys import GatysOptions, prepare, run
from stylegram.nets.vgg import VGG
from stylegram.weights import load_vgg

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONTENT_LAYER, STYLE_LAYERS = "conv4_2", ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


# --------------------------------------------------------------------------------------------- measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, repeats: int = 6) -> float:
    """Best GFLOP/s of an n×n matrix product on this device (all CPU threads)."""
    n = 8192 if device.type == "cuda" else 3072
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def conv_flops(vgg: VGG, h: int, w: int, layers: list[str], forward_through: str | None = None) -> float:
    """FLOPs of one loss evaluation: convolutions forward up to ``forward_through`` (default: the deepest loss
    layer), and backward (input gradients only: weights are frozen) from the deepest loss layer down."""
    names = vgg.layer_names
    deepest = max(names.index(n) for n in layers)
    fwd_last = names.index(forward_through) if forward_through else deepest
    total = 0.0
    for i, spec in enumerate(vgg.specs):
        if spec.kind != "conv" or i > fwd_last:
            continue
        hh, ww = -(-h // spec.scale), -(-w // spec.scale)
        one = 2.0 * spec.in_channels * spec.out_channels * 9 * hh * ww
        total += one + (one if i <= deepest else 0.0)
    # Gram matrices, forward and backward (two products each), at the style layers.
    for n in STYLE_LAYERS:
        s = vgg.spec(n)
        hh, ww = -(-h // s.scale), -(-w // s.scale)
        total += 3 * 2.0 * s.out_channels**2 * hh * ww
    return total


class PeakRSS:
    """Resident-set growth during a block, sampled every millisecond in a thread."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def measure(self, fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            result = fn()
            torch.cuda.synchronize(device)
            return result, (torch.cuda.max_memory_allocated(device) - base) / 2**20
        gc.collect()
        if self._libc is not None:
            self._libc.malloc_trim(0)
        start, peak, done = self._rss(), [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], self._rss())
                time.sleep(0.001)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            result = fn()
        finally:
            done.set()
            thread.join()
        return result, (max(peak[0], self._rss()) - start) / 2**20


# --------------------------------------------------------------------------------------------- the two runs


def as_sequential(vgg: VGG) -> nn.Sequential:
    """The same weights as a torchvision-style ``features`` stack (Conv2d / ReLU / pooling), for the baseline."""
    layers: list[nn.Module] = []
    for spec in vgg.specs:
        if spec.kind == "conv":
            layers.append(vgg.convs[spec.name])
        elif spec.kind == "relu":
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.AvgPool2d(2, ceil_mode=True) if vgg.pooling == "avg" else nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def baseline_names(vgg: VGG) -> dict[str, str]:
    """Our conv names -> the baseline's (conv_1, conv_2, … counting convolutions)."""
    convs = [s.name for s in vgg.specs if s.kind == "conv"]
    return {name: f"conv_{i + 1}" for i, name in enumerate(convs)}


def load_baseline(shared: Path) -> Any:
    sys.path.insert(0, str(shared / "baselines"))
    import textbook_gatys  # type: ignore[import-not-found]

    return textbook_gatys


def per_evaluation(stamps: list[float]) -> float:
    """Seconds per evaluation from each evaluation's end time, the first (warm-up) interval left out."""
    return (stamps[-1] - stamps[1]) / (len(stamps) - 2)


def run_stylegram(vgg: VGG, c: torch.Tensor, s: torch.Tensor, evals: int, precision: str) -> float:
    o = GatysOptions(size=max(c.shape[-2:]), iterations=evals, init="content", content_layers=(CONTENT_LAYER,),
                     style_layers=STYLE_LAYERS, precision=precision)  # type: ignore[arg-type]
    stamps: list[float] = []
    run(vgg, c, [s], o, on_step=lambda e: stamps.append(e.elapsed))
    return per_evaluation(stamps)


def run_baseline(tb: Any, features: nn.Sequential, names: dict[str, str], c: torch.Tensor, s: torch.Tensor,
                 evals: int) -> float:
    _, history = tb.run(features, c, s, evaluations=evals, content_layers=(names[CONTENT_LAYER],),
                        style_layers=tuple(names[n] for n in STYLE_LAYERS))
    return per_evaluation([seconds for _, seconds, _ in history])


# --------------------------------------------------------------------------------------------- report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--evals", type=int, default=12, help="loss evaluations per timed run")
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds per size (the best is kept)")
    p.add_argument("--shared", type=Path, default=SHARED, help="folder with baselines/ and images/ (../shared)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (peak memory is then the GPU's allocator peak)")
    p.add_argument("--precision", default="auto", help="stylegram's precision: auto (its default), float32, bfloat16")
    args = p.parse_args()
    shared: Path = args.shared
    if not (shared / "baselines" / "textbook_gatys.py").exists():
        print(f"needs {shared}/baselines/textbook_gatys.py and {shared}/images", file=sys.stderr)
        return 2
    tb = load_baseline(shared)
    device = torch.device(args.device)
    vgg, info = load_vgg("vgg16-caffe", pooling="avg", device=device)
    features, names = as_sequential(vgg), baseline_names(vgg)
    content = images.load_image(shared / "images" / "tubingen.jpg")
    style = images.load_image(shared / "images" / "starry_night.jpg")
    peak32 = matmul_peak(torch.float32, device)
    peak16 = matmul_peak(torch.bfloat16, device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; weights {info.source} {info.sha256[:12]}")
    print(f"matrix-multiply peak: float32 {peak32:.1f} GFLOP/s, bfloat16 {peak16:.1f} GFLOP/s")

    precision = GatysOptions(precision=args.precision).resolved(device).precision
    print(f"stylegram precision: {precision} (asked: {args.precision}); the baseline runs float32")
    peak = peak16 if precision == "bfloat16" else peak32
    mem = PeakRSS()
    for size in (int(x) for x in args.sizes.split(",")):
        c, _ = prepare(content, [], GatysOptions(size=size), device)
        h, w = c.shape[-2:]
        # The textbook code runs the style image through its content-loss module too: it needs equal sizes.
        s = images.to_tensor(images.resize_to(style, (w, h))).to(device)
        ours, base, mem_ours, mem_base = [], [], 0.0, 0.0
        for _ in range(args.repeats):
            t, m = mem.measure(functools.partial(run_stylegram, vgg, c, s, args.evals, precision), device)
            ours.append(t)
            mem_ours = max(mem_ours, m)
            t, m = mem.measure(functools.partial(run_baseline, tb, features, names, c, s, args.evals), device)
            base.append(t)
            mem_base = max(mem_base, m)
        layers = [CONTENT_LAYER, *STYLE_LAYERS]
        f_ours = conv_flops(vgg, h, w, layers)
        f_base = conv_flops(vgg, h, w, layers, forward_through="pool5")
        t_ours, t_base = min(ours), min(base)
        print(f"\n{w}x{h} px, {args.evals} evaluations x {args.repeats} rounds (best round; median "
              f"ours {statistics.median(ours):.3f} s, baseline {statistics.median(base):.3f} s)")
        print(f"  seconds/evaluation  stylegram {t_ours:.3f}   baseline {t_base:.3f}   "
              f"speed-up {t_base / t_ours:.2f}x")
        print(f"  GFLOP/evaluation    stylegram {f_ours / 1e9:.1f}   baseline {f_base / 1e9:.1f}")
        print(f"  GFLOP/s             stylegram {f_ours / t_ours / 1e9:.1f} ({100 * f_ours / t_ours / 1e9 / peak:.0f}% "
              f"of {precision} peak)   baseline {f_base / t_base / 1e9:.1f} "
              f"({100 * f_base / t_base / 1e9 / peak32:.0f}% of float32 peak)")
        print(f"  peak memory (MiB)   stylegram {mem_ours:.0f}   baseline {mem_base:.0f}   "
              f"ratio {mem_ours / max(mem_base, 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
