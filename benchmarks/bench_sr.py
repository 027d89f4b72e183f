"""Super-resolution models against bicubic, measured in one run: fidelity, feature distance and speed.

    .venv/bin/python benchmarks/bench_sr.py --model sr4-pixel.safetensors [--model sr4-feature.safetensors]
                                            [--sets Set5 Set14 BSD100] [--no-speed] [--threads N]
                                            [--tiled 4000x3000 --max-memory 4GB [--only-tiled]]

Printed:

* per evaluation set (always the project's held-out photos, then each ``--sets`` folder in any layout
  ``stylegram eval-sr`` reads), the table ``eval-sr`` prints, made by the same :class:`EvalJob`: PSNR-Y, SSIM-Y,
  RGB PSNR, relu2_2 feature distance; then each model against bicubic measured in this run: ΔPSNR-Y in dB, the
  ratio of its Y mean squared error to bicubic's (10^(−ΔPSNR/10), below 1 is better), SSIM-Y ÷ bicubic's and
  feature distance ÷ bicubic's;
* with two models whose records say ``loss: pixel`` and ``loss: feature``: the paper's comparison (Johnson et al.
  2016, Table 3 and Fig. 8): ℓ_pixel should win on PSNR/SSIM, ℓ_feat on the feature distance;
* speed: ×scale upscaling of a 256×256 input, batch 1, per model (PyTorch float32, no histogram matching) and
  for PyTorch's bicubic interpolation: median ms, ms per output megapixel, the ratio to bicubic, and the model's
  FLOPs (2·C_in·k²·C_out per output pixel of every convolution, transposed ones included) against the float32
  matrix-multiply peak measured first in this run: floor ms and latency ÷ floor.

* with ``--tiled WxH``: ``stylegram upscale`` of a WxH photo under ``--max-memory`` in a child process, its
  time and its peak resident memory against the budget.

Run by hand; never in CI. The feature distance needs the offline VGG16 (``vgg16-caffe``, from the pinned wheel).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stylegram.feedforward.evaluate import BICUBIC, EvalJob, EvalOptions, EvalReport
from stylegram.feedforward.model import FastStyleModel, load_model


def quality(models: list[str], folder: str | None, options: EvalOptions) -> EvalReport:
    job = EvalJob(models, folder, options, device="cpu")
    return job.run()


def print_quality(report: EvalReport) -> None:
    from stylegram.cli.feedforward import eval_table

    print(eval_table(report))
    base = report.mean[BICUBIC]
    for method, m in report.mean.items():
        if method == BICUBIC:
            continue
        delta = m.psnr_y - base.psnr_y
        feature = f"{m.feature / base.feature:.3f}" if m.feature is not None and base.feature else "-"
        print(f"  {method}: ΔPSNR-Y {delta:+.3f} dB, Y MSE ÷ bicubic {10 ** (-delta / 10):.3f}, "
              f"SSIM-Y ÷ bicubic {m.ssim_y / base.ssim_y:.4f}, features ÷ bicubic {feature}")
    per = "; ".join(f"{name} {report.per_image[BICUBIC][k].psnr_y:.2f}→" +
                    "/".join(f"{report.per_image[m][k].psnr_y:.2f}" for m in report.methods[1:])
                    for k, name in enumerate(report.images))
    print(f"  PSNR-Y per image (bicubic→models): {per}")


def print_loss_comparison(report: EvalReport, losses: dict[str, str]) -> None:
    by_loss = {loss: name for name, loss in losses.items()}
    if not {"pixel", "feature"} <= set(by_loss):
        return
    p, f = report.mean[by_loss["pixel"]], report.mean[by_loss["feature"]]
    print(f"  l_pixel vs l_feat: PSNR-Y {p.psnr_y:.2f} vs {f.psnr_y:.2f} dB, SSIM-Y {p.ssim_y:.4f} vs {f.ssim_y:.4f}"
          + (f", features {p.feature:.4g} vs {f.feature:.4g} (l_feat ÷ l_pixel {f.feature / p.feature:.3f})"
             if p.feature and f.feature else "")
          + "; the paper: l_pixel higher PSNR/SSIM, l_feat lower feature distance")


def conv_flops(net: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of every (transposed) convolution of ``net`` on ``x``: 2·C_in/groups·k² per output value of a
    Conv2d; 2·C_out/groups·k² per *input* value of a ConvTranspose2d (each input pixel scatters a k×k patch)."""
    total = 0.0

    def conv(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv2d)
        kh, kw = m.kernel_size
        total += 2.0 * (m.in_channels // m.groups) * kh * kw * out.numel()

    def transposed(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.ConvTranspose2d)
        kh, kw = m.kernel_size
        total += 2.0 * (m.out_channels // m.groups) * kh * kw * inputs[0].numel()

    handles = [m.register_forward_hook(conv) for m in net.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(transposed) for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return total


def print_speed(models: dict[str, FastStyleModel], scale: int, side: int = 256) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_fast import matmul_peak, timed  # the same timer and peak as the style network's benchmark

    device = torch.device("cpu")
    peak = matmul_peak(device)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    mpix = (side * scale) ** 2 / 1e6
    base = timed(lambda: F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False), device)
    print(f"speed: {side}×{side} → {side * scale}×{side * scale} ({mpix:.2f} MP), {torch.get_num_threads()} threads, "
          f"float32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"{'engine':28s} {'ms':>9s} {'ms/MP':>8s} {'÷ bicubic':>10s} {'GFLOP':>7s} {'floor ms':>9s} {'÷ floor':>8s}")
    dash = "-"
    print(f"{'bicubic (torch)':28s} {base * 1e3:9.1f} {base * 1e3 / mpix:8.1f} {1.0:10.1f} {dash:>7s} {dash:>9s} "
          f"{dash:>8s}")
    for name, model in models.items():
        flops = conv_flops(model.net, x)
        t = timed(lambda m=model: m.stylize_tensor(x, match_histogram=False), device)
        floor = flops / peak
        print(f"{name + ' (torch f32)':28s} {t * 1e3:9.1f} {t * 1e3 / mpix:8.1f} {t / base:10.1f} {flops / 1e9:7.1f} "
              f"{floor * 1e3:9.1f} {t / floor:8.2f}")


def print_tiled(model: str, size: str, budget: str) -> None:
    """``stylegram upscale`` in child processes on a WxH photo (scikit-image's astronaut, enlarged) with
    ``--max-memory``: wall time, output size and the child's peak resident memory, beside that of the same
    command on a 32×24 photo (the fixed cost of Python, torch and the model), so that the difference is what
    the image needed, to set against the budget."""
    import resource
    import subprocess
    import tempfile
    import time

    from PIL import Image
    from skimage import data

    from stylegram.core.units import parse_size

    w, h = (int(v) for v in size.lower().split("x"))
    peaks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in ((32, 24), (w, h)):  # the small one first: ru_maxrss of the children is a running maximum
            src, dst = Path(tmp) / "in.png", Path(tmp) / "out.png"
            Image.fromarray(data.astronaut()).resize(side, Image.Resampling.BICUBIC).save(src)
            t = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "stylegram", "upscale", str(src), "-o", str(dst), "--model",
                                  model, "--max-memory", budget], capture_output=True, text=True)
            elapsed = time.perf_counter() - t
            peaks.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30)  # kB on Linux
            if run.returncode != 0:
                print(f"tiled {side[0]}×{side[1]}: refused or failed ({run.returncode}): {run.stderr.strip()[-300:]}")
                return
        with dst.open("rb") as f:  # the PNG header's IHDR (Pillow refuses to open ~1.8e8 pixels and more)
            head = f.read(24)
        out_size = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
    print(f"tiled: {w}×{h} → {out_size[0]}×{out_size[1]} with --max-memory {budget} "
          f"({parse_size(budget) / 2**30:.2f} GiB): {elapsed:.0f} s, peak resident memory {peaks[1]:.2f} GiB, of "
          f"which {peaks[0]:.2f} GiB is the process itself (a 32×24 input): {peaks[1] - peaks[0]:.2f} GiB for the "
          f"image")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], help="a super-resolution model file (repeat for two)")
    p.add_argument("--sets", nargs="*", default=[], help="folders of Set5 / Set14 / BSD100 … (any eval-sr layout)")
    p.add_argument("--no-features", action="store_true", help="skip the VGG16 relu2_2 feature distance")
    p.add_argument("--no-match-histogram", action="store_true", help="score the raw network outputs")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--tiled", metavar="WxH", help="also upscale a WxH photo in a child process (e.g. 4000x3000)")
    p.add_argument("--max-memory", default="4GB", help="the --tiled run's budget (default 4GB)")
    p.add_argument("--only-tiled", action="store_true", help="skip the quality and speed parts")
    ns = p.parse_args()
    if ns.threads:
        torch.set_num_threads(ns.threads)
    options = EvalOptions(features=not ns.no_features, match_histogram=not ns.no_match_histogram)
    models = {Path(m).stem: load_model(m) for m in ns.model}
    losses = {name: str(m.info.extra.get("loss", "?")) for name, m in models.items()}
    for name, m in models.items():
        print(f"{name}: {m.info.architecture} ×{m.scale}, width {m.info.width:g}, {m.info.blocks} blocks, "
              f"loss {losses[name]}, {m.info.iterations} iterations")
    if ns.tiled:
        print_tiled(ns.model[0] if ns.model else "sr4", ns.tiled, ns.max_memory)
    if ns.only_tiled:
        return
    for folder in [None, *ns.sets]:
        report = quality(ns.model, folder, options)
        print_quality(report)
        print_loss_comparison(report, losses)
        print()
    if not ns.no_speed and models:
        print_speed(models, next(iter(models.values())).scale)


if __name__ == "__main__":
    main()
