"""stylegram at its defaults against neural-style-pt at its defaults: same VGG16 weights, same pairs, one evaluator.

    .venv/bin/python benchmarks/bench_defaults.py --peer /path/to/neural-style-pt [--size 512] [--reuse-peer]

neural-style-pt (ProGamerGov's PyTorch port of neural-style) is not a dependency: give a checkout of it with
``--peer``. It imports ``torchvision.transforms`` for six small things (Compose, Resize, ToTensor, Lambda,
Normalize, ToPILImage); torchvision does not import beside this torch, so the script writes a stand-in for them
into its output folder and puts it first on the peer's PYTHONPATH. Both programs get the offline Caffe VGG16
(``vgg16-caffe``): the peer as a torchvision-layout ``.pth`` written into the checkout's ``models/`` (its loader
needs "vgg"/"16" in the path, and ``-disable_check`` for a file without the classifier), in the same BGR 0–255
mean-subtracted input space. Each runs as its own process on the same machine, one after the other (or, with
``--peer-only`` and ``--ours-only`` in two processes at one thread each, side by side, one core each), at its own
defaults (the peer's: content weight 5, style weight 100, TV 1e-3, max pooling, random start, 1000 L-BFGS
iterations; only ``-gpu c`` and the model file are given), and the wall time of the whole process is measured.

The one evaluator scores every output at its own size against the content and style resized as stylegram
does: the paper's style loss with equal layer weights (Σ_l ⅕ E_l over relu1_1 … relu5_1), the content loss at
relu4_2 (mean squared feature difference), and the total variation (mean |neighbour difference| of the 8-bit
image, 0–255), with average pooling; and, for coloured fringes, the output's chroma gradient on the photo's
strongest edges (:func:`fringe`). Printed per pair: the values for both and the ratios stylegram / peer (all
should be ≤ 1), the wall time ratio (goal ≤ 0.5) and, where both were recorded, the CPU time ratio (steadier
when the machine is shared). ``--figure`` writes the pairs
side by side (content | style | stylegram | neural-style-pt).

Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from stylegram.core import images
from stylegram.core.figures import panel_grid
from stylegram.losses import functional as losses
from stylegram.nets.vgg import VGG
from stylegram.weights import load_vgg

PAIRS = "tubingen:starry_night,golden_gate:the_scream,brad_pitt:picasso_selfport1907,tubingen:shipwreck"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# The peer's use of torchvision.transforms, re-done in a few lines for its process only.
SHIM = '''
import torch
from PIL import Image
import numpy as np


class Compose:
    def __init__(self, steps):
        self.steps = steps

    def __call__(self, x):
        for step in self.steps:
            x = step(x)
        return x


class Resize:
    def __init__(self, size):
        self.size = size  # (height, width), as the peer passes it

    def __call__(self, img):
        h, w = self.size
        return img.resize((w, h), Image.BILINEAR)


class ToTensor:
    def __call__(self, img):
        a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()


class Lambda:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, x):
        return (x - self.mean) / self.std


class ToPILImage:
    def __call__(self, x):
        a = (x.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        return Image.fromarray(a)
'''

# torchvision's VGG16 ``features`` indices of the 13 convolutions.
_CONV_INDEX = dict(zip(
    ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3",
     "conv5_1", "conv5_2", "conv5_3"), (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), strict=True))


def peer_model(vgg: VGG, peer: Path) -> Path:
    """The weights as the peer loads them, in its own ``models/`` folder, named by a relative path: its loader
    picks the architecture by looking for "19" or "16" anywhere in the path it is given."""
    path = peer / "models" / "vgg16-stylegram-caffe.pth"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        state = {}
        for name, conv in vgg.convs.items():  # type: ignore[union-attr]
            i = _CONV_INDEX[name]
            state[f"features.{i}.weight"] = conv.weight.detach().clone()
            state[f"features.{i}.bias"] = conv.bias.detach().clone()
        torch.save(state, path)
    return path


def run_peer(peer: Path, content: Path, style: Path, output: Path, model: Path, shim: Path, size: int,
             iterations: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "neural_style.py", "-content_image", str(content), "-style_image", str(style),
           "-output_image", str(output), "-model_file", str(model.relative_to(peer)), "-gpu", "c", "-disable_check",
           "-image_size", str(size), "-num_iterations", str(iterations), "-print_iter", "0", "-save_iter", "0"]
    return _timed(cmd, cwd=peer, env=env, stdout=subprocess.DEVNULL)


def run_ours(content: Path, style: Path, output: Path, size: int, extra: list[str]) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "stylegram", "stylize", str(content), str(style), "-o", str(output),
           "--size", str(size), "--quiet", *extra]
    return _timed(cmd, stderr=subprocess.DEVNULL)


def _timed(cmd: list[str], **kwargs: Any) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, **kwargs)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def score(vgg: VGG, output: Path, content: Path, style: Path) -> dict[str, float]:
    """The one yardstick: style loss (Σ ⅕ E_l), content loss (MSE at relu4_2), TV (mean |Δ|, 0–255)."""
    out_img = images.load_image(output)
    w, h = out_img.size
    x = images.to_tensor(out_img)
    c = images.to_tensor(images.resize_to(images.load_image(content), (w, h)))
    s = images.to_tensor(images.resize_longest(images.load_image(style), max(w, h)))
    with torch.no_grad():
        fx = vgg(x, (*STYLE_LAYERS, "relu4_2"))
        fc = vgg(c, ("relu4_2",))
        fs = vgg(s, STYLE_LAYERS)
        style_loss = sum(0.2 * float(losses.style_layer_loss(losses.gram_matrix(fx[k]), losses.gram_matrix(fs[k])))
                         for k in STYLE_LAYERS)
        content_loss = float((fx["relu4_2"] - fc["relu4_2"]).pow(2).mean())
        q = (x * 255).round()
        tv = float(torch.cat([(q[..., 1:, :] - q[..., :-1, :]).abs().flatten(),
                              (q[..., :, 1:] - q[..., :, :-1]).abs().flatten()]).mean())
    return {"style": style_loss, "content": content_loss, "tv": tv, "fringe": fringe(q, (c * 255).round())}


def fringe(q: torch.Tensor, photo: torch.Tensor) -> float:
    """Colour fringing at strong edges: the mean chroma gradient magnitude (BT.601 Cb, Cr in 0–255) of the
    output ``q`` on the photo's strongest edges (the top 5 % of its luminance gradient, and their neighbours),
    where a fringe, a thin line of colour that neither image has, shows; lower is cleaner."""

    def grad(t: torch.Tensor) -> torch.Tensor:  # (…, H, W) → |∇t| on (…, H − 1, W − 1)
        return torch.hypot(t[..., 1:, :-1] - t[..., :-1, :-1], t[..., :-1, 1:] - t[..., :-1, :-1])

    r, g, b = photo[0]
    edges = grad(0.299 * r + 0.587 * g + 0.114 * b)
    mask = edges >= edges.flatten().quantile(0.95) if edges.numel() <= 1 << 24 else edges >= edges.mean()
    mask = torch.nn.functional.max_pool2d(mask[None, None].float(), 3, 1, 1)[0, 0] > 0
    r, g, b = q[0]
    cb, cr = -0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b
    chroma = torch.hypot(grad(cb), grad(cr))
    return float(chroma[mask].mean())


def _cpu_ratio(out: Path, tag: str, pair: str) -> str:
    """``   CPU a s / b s = r`` when both runs' CPU times were recorded (runs made before that was, have none)."""
    ours, peer = (json.loads(f.read_text()).get(pair) if f.exists() else None
                  for f in (out / f"{tag}_cpu.json", out / "peer_cpu.json"))
    return f"   CPU {ours:.0f} s / {peer:.0f} s = {ours / peer:.2f}" if ours and peer else ""


def _merged(file: Path, pair: str, seconds: float) -> dict[str, float]:
    """``file``'s times with ``pair``'s set, written back: read again first, so that runs side by side (two
    peer pairs on two cores) do not overwrite each other's entries."""
    times: dict[str, float] = json.loads(file.read_text()) if file.exists() else {}
    times[pair] = seconds
    file.write_text(json.dumps(times, indent=1))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", type=Path, required=True, help="a checkout of neural-style-pt")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--pairs", default=PAIRS, help="photo:painting,… (file stems in SHARED/images)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--peer-iterations", type=int, default=1000, help="the peer's default: 1000")
    ap.add_argument("--out", type=Path, default=Path("out/bench_defaults"))
    ap.add_argument("--reuse-peer", action="store_true", help="keep peer outputs (and times) already in --out")
    ap.add_argument("--reuse-ours", action="store_true", help="keep stylegram's outputs (and times) already in --out "
                    "under --tag")
    ap.add_argument("--peer-only", action="store_true", help="run (or reuse) the peer's outputs and stop")
    ap.add_argument("--ours-only", action="store_true", help="run (or reuse) stylegram's outputs only; score a pair "
                    "only when the peer's output is already there (so the two can run side by side, one core each)")
    ap.add_argument("--ours", default="", help="extra stylize flags (a sweep; empty: the defaults)")
    ap.add_argument("--tag", default="ours", help="name of stylegram's outputs in --out")
    ap.add_argument("--figure", type=Path, default=None, help="side-by-side figure of the pairs")
    ap.add_argument("--peer-scores", type=Path, default=None,
                    help="JSON {pair: {style, content, tv, fringe, seconds}}: the peer's scores from an earlier run "
                    "of this script (the same evaluator); the peer is not run again, and its time is that run's")
    args = ap.parse_args()
    stored: dict[str, dict[str, float]] = json.loads(args.peer_scores.read_text()) if args.peer_scores else {}

    out = args.out.resolve()
    (out / "shim" / "torchvision").mkdir(parents=True, exist_ok=True)
    (out / "shim" / "torchvision" / "__init__.py").write_text("")
    (out / "shim" / "torchvision" / "transforms.py").write_text(SHIM)
    evaluator, _ = load_vgg("vgg16-caffe", pooling="avg")
    model = peer_model(evaluator, args.peer.resolve())
    root = args.shared / "images"
    times_file = out / "peer_times.json"
    peer_times: dict[str, float] = json.loads(times_file.read_text()) if times_file.exists() else {}
    ours_file = out / f"{args.tag}_times.json"
    ours_times: dict[str, float] = json.loads(ours_file.read_text()) if ours_file.exists() else {}
    rows, figure_rows, labels = [], [], []
    for pair in args.pairs.split(","):
        photo, painting = pair.split(":")
        content = next(root.glob(f"{photo}.*"))
        style = next(root.glob(f"{painting}.*"))
        peer_out = out / f"peer_{photo}_{painting}.png"
        if pair in stored:
            peer_times[pair] = stored[pair]["seconds"]
        elif not args.ours_only and not (args.reuse_peer and peer_out.exists() and pair in peer_times):
            wall, cpu = run_peer(args.peer.resolve(), content, style, peer_out, model, out / "shim", args.size,
                                 args.peer_iterations)
            peer_times = _merged(times_file, pair, wall)
            _merged(out / "peer_cpu.json", pair, cpu)
        if args.peer_only:
            print(f"{pair:36s} neural-style-pt {peer_times[pair]:.0f} s", flush=True)
            continue
        ours_out = out / f"{args.tag}_{photo}_{painting}.png"
        if not (args.reuse_ours and ours_out.exists() and pair in ours_times):
            wall, cpu = run_ours(content, style, ours_out, args.size, args.ours.split())
            ours_times = _merged(ours_file, pair, wall)
            _merged(out / f"{args.tag}_cpu.json", pair, cpu)
        ours_time = ours_times[pair]
        if args.ours_only and pair not in stored:
            peer_times = json.loads(times_file.read_text()) if times_file.exists() else {}
            if not (peer_out.exists() and pair in peer_times):
                print(f"{pair:36s} stylegram {ours_time:.0f} s (no peer output yet)", flush=True)
                continue
        a = score(evaluator, ours_out, content, style)
        b = stored[pair] if pair in stored else score(evaluator, peer_out, content, style)
        rows.append((pair, a, b, ours_time, peer_times[pair]))
        print(f"{pair:36s} style {a['style']:.3g} / {b['style']:.3g} = {a['style'] / b['style']:.2f}   "
              f"content {a['content']:.4g} / {b['content']:.4g} = {a['content'] / b['content']:.2f}   "
              f"TV {a['tv']:.2f} / {b['tv']:.2f} = {a['tv'] / b['tv']:.2f}   "
              f"fringe {a['fringe']:.2f} / {b['fringe']:.2f} = {a['fringe'] / b['fringe']:.2f}   "
              f"wall {ours_time:.0f} s / {peer_times[pair]:.0f} s = {ours_time / peer_times[pair]:.2f}"
              f"{'' if pair in stored else _cpu_ratio(out, args.tag, pair)}", flush=True)
        if pair in stored:
            continue
        size = images.load_image(ours_out).size
        figure_rows.append([images.resize_to(images.load_image(content), size),
                            images.resize_longest(images.load_image(style), max(size)),
                            images.load_image(ours_out), images.resize_to(images.load_image(peer_out), size)])
        labels.append(f"{photo} + {painting}")
    if not rows:
        return
    worst = {k: max(r[1][k] / r[2][k] for r in rows) for k in ("style", "content", "tv", "fringe")}
    wall = max(r[3] / r[4] for r in rows)
    print(f"worst ratio over {len(rows)} pairs (stylegram / neural-style-pt): style {worst['style']:.2f}, "
          f"content {worst['content']:.2f}, TV {worst['tv']:.2f}, fringe {worst['fringe']:.2f}, wall time {wall:.2f}")
    if args.figure is not None:
        fig = panel_grid(figure_rows, labels, ["content", "style", "stylegram (defaults)", "neural-style-pt"])
        images.save_image(fig.image, args.figure, {"benchmark": "bench_defaults", "pairs": args.pairs,
                                                   "size": args.size, "ours": args.ours})


if __name__ == "__main__":
    main()
