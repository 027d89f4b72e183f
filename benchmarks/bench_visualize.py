"""stylegram.visualize against captum (>= 0.9) on the same VGG16 and image, measured in one process.

    .venv/bin/pip install "captum>=0.9"        # benchmark-only; stylegram never needs it
    .venv/bin/python benchmarks/bench_visualize.py [--occlusion 224:15:8,512:60:50] [--batches 1,16,64]
                                                   [--crops 500] [--repeats 3] [--device cpu] [--threads N]
                                                   [--captum-max-positions N]

Network: the offline ``vgg16-caffe`` with max pooling. captum sees only ``nn.ReLU`` modules, so it gets an
adapter: the same convolutions (shared, not copied) in an ``nn.Sequential`` with ``nn.ReLU`` and
``nn.MaxPool2d(2, ceil_mode=True)``, behind the same input normalisation. Image: scikit-image's astronaut.

Printed:

* projections (relu5_3's strongest activation, and relu3_3's): the largest difference between stylegram's
  projection and the activation value × captum's ``Deconvolution`` / ``GuidedBackprop`` / input gradient,
  relative to the projection's largest magnitude; and the latency per activation of each (stylegram one at a
  time, and nine units of one image in one batched walk);
* occlusion (size:window:stride): the largest difference between captum's ``Occlusion`` attribution (the
  drop of relu5_3's strongest map's total, averaged over the windows covering each pixel) and stylegram's map
  laid out the same way, relative to its largest magnitude; seconds of each per batch size, and the ratio of
  captum's best to stylegram's best;
* top-9 over N random 64² crops of scikit-image photos: images/s and the peak resident-memory growth with
  100 crops and with N crops (it must not grow with N).

Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from stylegram.core import images
from stylegram.nets.vgg import VGG
from stylegram.visualize import ImageFolder, occlusion, project, top_activations
from stylegram.visualize.layers import steps, upto
from stylegram.visualize.occlusion import positions
from stylegram.visualize.project import forward_record, project_units
from stylegram.weights import load_vgg


def captum_adapter(vgg: VGG, layer: str) -> nn.Module:
    """``vgg`` up to ``layer`` with module ReLUs and pools, as captum needs; the convolutions are shared."""
    modules: list[nn.Module] = [vgg.normalize]
    for step in upto(vgg, layer):
        if step.kind == "conv":
            assert step.conv is not None
            modules.append(step.conv)
        elif step.kind == "relu":
            modules.append(nn.ReLU(inplace=False))
        else:
            modules.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*modules).eval()


class Flat(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).flatten(1)


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    times = [float("inf")]
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def compare_projections(vgg: VGG, image: torch.Tensor, repeats: int) -> None:
    from captum.attr import Deconvolution, GuidedBackprop, Saliency

    print("\n## projections (224 px astronaut)")
    print("| layer | rule | max rel. difference | stylegram ms/activation | batched ×9 ms/activation | captum ms |")
    print("|---|---|---|---|---|---|")
    for layer in ("relu5_3", "relu3_3"):
        flat = Flat(captum_adapter(vgg, layer))
        for rule, algo in (("deconvnet", Deconvolution), ("guided", GuidedBackprop), ("gradient", Saliency)):
            print(_projection_row(vgg, image, layer, rule, algo(flat), repeats))


def _projection_row(vgg: VGG, image: torch.Tensor, layer: str, rule: str, method: Any, repeats: int) -> str:
    ours = project(vgg, image, layer, rule=rule)
    c, (y, x) = ours.channel, ours.position
    h, w = vgg.feature_shape(layer, *image.shape[-2:])
    target = (c * h + y) * w + x
    kwargs = {"abs": False} if rule == "gradient" else {}

    def theirs() -> torch.Tensor:
        return method.attribute(image.clone().requires_grad_(True), target=target, **kwargs).detach()  # type: ignore[no-any-return]

    diff = float((ours.image - ours.activation * theirs()).abs().max() / ours.image.abs().max())
    t_ours = best_time(lambda: project(vgg, image, layer, c, rule, (y, x)), repeats)
    path, rec = forward_record(vgg, image, layer)
    units = [(c, y, x)] * 9
    t_batch = best_time(lambda: project_units(vgg, path, rec, units, rule, image.shape[-2:]), repeats) / 9  # type: ignore[arg-type]
    t_theirs = best_time(theirs, repeats)
    return (f"| {layer} | {rule} | {diff:.1e} | {1e3 * t_ours:.0f} | {1e3 * t_batch:.0f} | "
            f"{1e3 * t_theirs:.0f} ({t_theirs / t_ours:.2f}× ours) |")


def compare_occlusion(vgg: VGG, photo: Image.Image, spec: str, batches: list[int], repeats: int,
                      captum_max: int) -> None:
    """Agreement and seconds per batch size.

    captum's cost is one full forward pass per occluded image whatever the window, so when the positions exceed
    ``captum_max`` it runs on fewer and its time is scaled by the ratio of the position counts (marked ≈): with
    the same window at a coarser stride if that fits (compared with stylegram at that stride too), else with a
    window and stride large enough (timing only). captum wants the stride no larger than the window."""
    from captum.attr import Occlusion

    size, window, stride = (int(v) for v in spec.split(":"))
    image = images.to_tensor(images.resize_longest(photo, size))
    h, w = image.shape[-2:]
    layer = "relu5_3"
    adapter = captum_adapter(vgg, layer)

    def count(win: int, step: int) -> int:
        return len(positions(h, win, step)) * len(positions(w, win, step))

    n = count(window, stride)
    c_win, c_step = window, next((s for s in range(stride, window + 1) if count(window, s) <= captum_max), 0)
    if not c_step:
        c_win = next(s for s in range(window, min(h, w) + 1) if count(s, s) <= captum_max or s == min(h, w))
        c_step = c_win
    scale = n / count(c_win, c_step)
    first = occlusion(vgg, image, layer, window, c_step if c_win == window else stride, 0.5,
                      batch_size=batches[-1])
    c = first.channel

    def total(x: torch.Tensor) -> torch.Tensor:
        return adapter(x)[:, c].sum(dim=(1, 2))

    occ = Occlusion(total)

    def theirs(b: int) -> torch.Tensor:
        with torch.no_grad():
            return occ.attribute(image, (3, c_win, c_win), (3, c_step, c_step), 0.5, perturbations_per_eval=b)

    t = time.perf_counter()
    captum_pixels = theirs(batches[-1])[0, 0]
    timed_theirs = {batches[-1]: time.perf_counter() - t}
    if c_win == window:
        ours_pixels = first.to_pixels(first.unoccluded - first.activation, h, w)
        covered = torch.isfinite(ours_pixels)
        diff = float((ours_pixels[covered] - captum_pixels[covered]).abs().max()) / float(
            ours_pixels[covered].abs().max())
        agreement = f"max rel. difference {diff:.1e} (stride {c_step})"
    else:
        agreement = "agreement not checked (captum would need too many positions)"
    note = "" if scale == 1 else (f"; captum timed with window {c_win}, stride {c_step} "
                                  f"({count(c_win, c_step)} positions) and scaled ×{scale:.2f}")
    print(f"\n## occlusion {w}×{h}, window {window}, stride {stride} ({n} positions), {agreement}{note}")
    print("| batch | stylegram s | captum s |")
    print("|---|---|---|")
    best_ours, best_theirs = float("inf"), float("inf")
    mark = "" if scale == 1 else "≈"
    for b in batches:
        t_ours = best_time(lambda b=b: occlusion(vgg, image, layer, window, stride, 0.5, channel=c, batch_size=b),
                           repeats)
        more = repeats - (b in timed_theirs)
        t_theirs = scale * min(timed_theirs.get(b, float("inf")), best_time(lambda b=b: theirs(b), more))
        best_ours, best_theirs = min(best_ours, t_ours), min(best_theirs, t_theirs)
        print(f"| {b} | {t_ours:.2f} | {mark}{t_theirs:.2f} |")
    print(f"captum's best / stylegram's best: **{mark}{best_theirs / best_ours:.2f}×**")


class PeakRSS:
    """The resident set's high-water mark above its level at the start, sampled every millisecond."""

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start = self.peak = _rss()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def write_crops(folder: Path, count: int, side: int = 64) -> None:
    from skimage import data

    photos = [getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]
    rng = np.random.default_rng(0)
    for i in range(count):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - side), rng.integers(0, p.shape[1] - side)
        Image.fromarray(p[y : y + side, x : x + side]).save(folder / f"crop_{i:05d}.png")


def bench_top(vgg: VGG, crops: int) -> None:
    layers = ["relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    channels = {layer: list(range(0, 64, 8)) for layer in layers}
    print(f"\n## top-9 over folders of 64² crops, {len(layers)} layers × 8 maps, projections included")
    print("| crops | images/s | peak RSS growth MiB |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        write_crops(Path(tmp), crops)
        for n in (100, crops):
            sub = Path(tmp) / f"n{n}"
            sub.mkdir()
            for f in sorted(Path(tmp).glob("crop_*.png"))[:n]:
                os.link(f, sub / f.name)
            with PeakRSS() as rss:
                t = time.perf_counter()
                result = top_activations(vgg, ImageFolder(sub), layers, 9, channels)
                seconds = time.perf_counter() - t
            print(f"| {n} | {result.images / seconds:.1f} | {rss.growth_mib:.0f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--occlusion", default="224:15:8,512:60:50", help="size:window:stride,… (default: the issue's)")
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--captum-max-positions", type=int, default=10**9,
                   help="above this many positions captum runs on a coarser stride and its time is scaled")
    p.add_argument("--crops", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--skip", default="", help="comma-separated: projections, occlusion, top")
    ns = p.parse_args()
    try:
        import captum
    except ImportError:
        print('captum is not installed: .venv/bin/pip install "captum>=0.9"', file=sys.stderr)
        return 2
    if ns.threads:
        torch.set_num_threads(ns.threads)
    vgg, _ = load_vgg("vgg16-caffe", pooling="max", device=ns.device)
    assert {s.kind for s in steps(vgg)} >= {"maxpool"}
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    print(f"stylegram vs captum {captum.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{ns.device}")
    skip = set(ns.skip.split(","))
    if "projections" not in skip:
        compare_projections(vgg, images.to_tensor(images.resize_longest(photo, 224)), ns.repeats)
    if "occlusion" not in skip:
        for spec in ns.occlusion.split(","):
            compare_occlusion(vgg, photo, spec, [int(b) for b in ns.batches.split(",")], ns.repeats,
                              ns.captum_max_positions)
    if "top" not in skip:
        bench_top(vgg, ns.crops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
