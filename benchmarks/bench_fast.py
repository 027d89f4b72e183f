"""Speed of the Johnson transform network against its arithmetic floor, measured in one process.

    .venv/bin/python benchmarks/bench_fast.py [--sizes 256,512,1024] [--device cpu|cuda] [--threads N]
                                              [--no-onnx] [--no-bf16] [--no-train]

Printed:

* float32 and bfloat16 matrix-multiply peaks measured first, in this run (n×n products, best of several);
* per input size (square, batch 1) and width (1.0 and 0.5), and per engine (PyTorch float32, PyTorch bfloat16 as
  ``stylegram apply --precision bfloat16`` runs it, onnxruntime on the CPU): the network's FLOPs counted from its
  layer shapes (2·C_in·k²·C_out per output pixel of every convolution; normalisation, activations and resizing
  are memory-bound and left out), the median latency, the floor = FLOPs ÷ the peak of the row's own arithmetic
  (the bfloat16 peak for bfloat16 rows) with the ratio latency ÷ floor (1.0 would be matrix-multiply speed
  throughout), and "x f32 floor" = latency ÷ (FLOPs ÷ float32 peak), the same yardstick for every row (below 1.0:
  faster than float32 arithmetic could ever be). The bfloat16 rows run where the hardware has bfloat16 units
  (:func:`stylegram.gatys.native_bfloat16`), or never with ``--no-bf16``;
* one training step (batch 4, 256 px, full width, VGG16 loss network to relu4_3, Adam) against its floor:
  transformer forward + its backward (≈ 2× forward: input and weight gradients) + VGG forward on the stylised
  batch + VGG backward (input gradients only, ≈ 1× forward) + VGG forward on the photos up to relu2_2.

The loss network gets random weights: speed does not depend on their values, and the run needs no files.
Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from stylegram.feedforward.train import (
    JOHNSON_CONTENT_LAYERS,
    JOHNSON_STYLE_LAYERS,
    LossTargets,
    TrainOptions,
    perceptual_loss,
)
from stylegram.nets.transformer import TransformerNet
from stylegram.nets.vgg import VGG


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, *, min_runs: int = 3, min_seconds: float = 1.0,
          warmup: int = 1) -> float:
    """Median seconds of ``fn`` over at least ``min_runs`` runs and ``min_seconds`` of running."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
        if len(times) >= 200:
            break
    return statistics.median(times)


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of an n×n matrix product in ``dtype`` on this device with the current thread settings."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    best = min(timed(lambda: a @ b, device, min_runs=5, min_seconds=0.5) for _ in range(3))
    return 2 * n**3 / best


def conv_flops(module: nn.Module, run: Callable[[], object]) -> float:
    """FLOPs of every Conv2d in ``module`` during ``run()``, counted from the shapes they see (hooks removed after)."""
    total = 0.0

    def hook(m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv2d)
        kh, kw = m.kernel_size
        total += 2.0 * (m.in_channels // m.groups) * kh * kw * out.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


def _row(size: int, width: float, engine: str, flops: float, t: float, peak: float | None,
         peak32: float | None) -> list[str]:
    """A table row; ``peak`` is the row's own arithmetic's peak, ``peak32`` the float32 one (None: not comparable)."""
    own = f"{flops / peak * 1e3:.1f}" if peak else "-", f"{t / (flops / peak):.2f}" if peak else "-"
    return [f"{size}", f"{width:g}", engine, f"{flops / 1e9:.1f}", f"{t * 1e3:.1f}", *own,
            f"{t / (flops / peak32):.2f}" if peak32 else "-"]


def inference_rows(sizes: Iterable[int], device: torch.device, peak: float, onnx: bool,
                   peak_bf16: float | None = None) -> list[list[str]]:
    """Rows per width and size: PyTorch float32, PyTorch bfloat16 (if ``peak_bf16``), onnxruntime (if ``onnx``)."""
    from stylegram.feedforward.model import FastStyleModel, ModelInfo

    rows = []
    for width in (1.0, 0.5):
        torch.manual_seed(0)
        net = TransformerNet(width).to(device).eval()
        session = _onnx_session(net) if onnx else None
        low = FastStyleModel(net, ModelInfo(width=width), device, precision="bfloat16") if peak_bf16 else None
        for size in sizes:
            x = torch.rand(1, 3, size, size, device=device)
            flops = conv_flops(net, partial(net, x))
            with torch.inference_mode():
                t = timed(partial(net, x), device)
            rows.append(_row(size, width, f"torch-{device.type} f32", flops, t, peak, peak))
            if low is not None and peak_bf16:
                t = timed(partial(low.stylize_tensor, x), device)
                rows.append(_row(size, width, f"torch-{device.type} bf16", flops, t, peak_bf16, peak))
            if session is not None:
                feed = {"input": x.cpu().numpy()}
                t = timed(partial(session.run, ["output"], feed), torch.device("cpu"))
                cpu_peak = peak if device.type == "cpu" else None
                rows.append(_row(size, width, "onnxruntime-cpu f32", flops, t, cpu_peak, cpu_peak))
    return rows


def _onnx_session(net: TransformerNet) -> Any:
    import onnxruntime as ort

    from stylegram.feedforward.export import onnx_bytes
    from stylegram.feedforward.model import FastStyleModel, ModelInfo

    device = next(net.parameters()).device
    data = onnx_bytes(FastStyleModel(net.cpu(), ModelInfo(width=net.width)))
    net.to(device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def training_row(device: torch.device, peak: float, batch: int = 4, size: int = 256) -> list[str]:
    torch.manual_seed(0)
    vgg = VGG("vgg16", pooling="max").to(device).freeze()
    net = TransformerNet(1.0).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    options = TrainOptions(batch_size=batch, image_size=size)
    style = torch.rand(1, 3, 512, 512, device=device)
    with torch.no_grad():
        feats = vgg(style, JOHNSON_STYLE_LAYERS)
    from stylegram.losses import gram_matrix

    targets = LossTargets({k: gram_matrix(v) for k, v in feats.items()})
    x = torch.rand(batch, 3, size, size, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        terms = perceptual_loss(vgg, net(x), x, targets, options)
        terms["total"].backward()  # type: ignore[no-untyped-call]
        opt.step()

    f_net = conv_flops(net, lambda: net(x))
    f_vgg = conv_flops(vgg, lambda: vgg(x, JOHNSON_STYLE_LAYERS))
    f_content = conv_flops(vgg, lambda: vgg(x, JOHNSON_CONTENT_LAYERS))
    flops = 3 * f_net + 2 * f_vgg + f_content
    t = timed(step, device, min_runs=3, min_seconds=2.0)
    return _row(size, 1.0, f"train-{device.type} b{batch} f32", flops, t, peak, peak)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--no-bf16", action="store_true", help="no PyTorch bfloat16 rows")
    p.add_argument("--no-train", action="store_true")
    ns = p.parse_args()
    if ns.threads:
        torch.set_num_threads(ns.threads)
    device = torch.device(ns.device)
    from stylegram.gatys import native_bfloat16

    peak = matmul_peak(device)
    peak_bf16 = matmul_peak(device, torch.bfloat16) if not ns.no_bf16 and native_bfloat16(device) else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    shown = f"{peak_bf16 / 1e9:.0f} GFLOP/s" if peak_bf16 else "not measured (no native bfloat16, or --no-bf16)"
    print(f"device: {name}; torch {torch.__version__}; matmul peak float32 {peak / 1e9:.0f} GFLOP/s, "
          f"bfloat16 {shown}")
    print("floor = FLOPs / peak of the row's arithmetic (bf16 rows: the bfloat16 peak); "
          "x f32 floor = ms / (FLOPs / float32 peak), for every row")
    header = ["px", "width", "engine", "GFLOP", "ms", "floor ms", "x floor", "x f32 floor"]
    rows = inference_rows([int(s) for s in ns.sizes.split(",")], device, peak, not ns.no_onnx, peak_bf16)
    if not ns.no_train:
        rows.append(training_row(device, peak))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
