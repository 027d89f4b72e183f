"""Speed of the Johnson transform network against its arithmetic floor, measured in one process.

    .venv/bin/python benchmarks/bench_fast.py [--sizes 256,512,1024] [--device cpu|cuda] [--threads N]

Printed:

* a float32 matrix-multiply peak measured first, in this run (n×n products, best of several);
* per input size (square, batch 1) and width (1.0 and 0.5), and per engine (PyTorch, onnxruntime on the CPU):
  the network's FLOPs counted from its layer shapes (2·C_in·k²·C_out per output pixel of every convolution;
  normalisation, activations and resizing are memory-bound and left out), the median latency, and the floor =
  FLOPs ÷ peak with the ratio latency ÷ floor (1.0 would be matrix-multiply speed throughout);
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
from typing import Any

import torch
from torch import Tensor, nn

from stylegram.train import JOHNSON_CONTENT_LAYERS, JOHNSON_STYLE_LAYERS, LossTargets, TrainOptions, perceptual_loss
from stylegram.transformer import TransformerNet
from stylegram.vgg import VGG


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


def matmul_peak(device: torch.device) -> float:
    """Best float32 FLOP/s of an n×n matrix product on this device with the current thread settings."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
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


def inference_rows(sizes: Iterable[int], device: torch.device, peak: float, onnx: bool) -> list[list[str]]:
    rows = []
    for width in (1.0, 0.5):
        torch.manual_seed(0)
        net = TransformerNet(width).to(device).eval()
        session = _onnx_session(net) if onnx else None
        for size in sizes:
            x = torch.rand(1, 3, size, size, device=device)
            flops = conv_flops(net, lambda x=x, net=net: net(x))
            floor = flops / peak
            with torch.inference_mode():
                t = timed(lambda x=x, net=net: net(x), device)
            rows.append([f"{size}", f"{width:g}", f"torch-{device.type}", f"{flops / 1e9:.1f}", f"{t * 1e3:.1f}",
                         f"{floor * 1e3:.1f}", f"{t / floor:.1f}"])
            if session is not None:
                feed = {"input": x.cpu().numpy()}
                t = timed(lambda feed=feed, s=session: s.run(["output"], feed), torch.device("cpu"))
                rows.append([f"{size}", f"{width:g}", "onnxruntime-cpu", f"{flops / 1e9:.1f}", f"{t * 1e3:.1f}",
                             f"{floor * 1e3:.1f}" if device.type == "cpu" else "-",
                             f"{t / floor:.1f}" if device.type == "cpu" else "-"])
    return rows


def _onnx_session(net: TransformerNet) -> Any:
    import onnxruntime as ort

    from stylegram.export import onnx_bytes
    from stylegram.fast import FastStyleModel, ModelInfo

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
    floor = flops / peak
    return [f"{size}", "1", f"train-{device.type} b{batch}", f"{flops / 1e9:.1f}", f"{t * 1e3:.1f}",
            f"{floor * 1e3:.1f}", f"{t / floor:.1f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--no-train", action="store_true")
    ns = p.parse_args()
    if ns.threads:
        torch.set_num_threads(ns.threads)
    device = torch.device(ns.device)
    peak = matmul_peak(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"device: {name}; torch {torch.__version__}; float32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    header = ["px", "width", "engine", "GFLOP", "ms", "floor ms", "x floor"]
    rows = inference_rows([int(s) for s in ns.sizes.split(",")], device, peak, not ns.no_onnx)
    if not ns.no_train:
        rows.append(training_row(device, peak))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
