"""Quality of a trained feed-forward network against optimisation, with one evaluator for both.

    .venv/bin/python benchmarks/bench_fast_quality.py --model starry.safetensors --style STARRY.jpg
    .venv/bin/python benchmarks/bench_fast_quality.py --train 200 --style STARRY.jpg   # a quick model first

For each held-out photo (default: ../shared/images tubingen, golden_gate, brad_pitt), the evaluator is the loss the
network was trained to minimise (``train.perceptual_loss`` with the model's weights and layers) for that photo.
The network's output gets one value; L-BFGS (strong-Wolfe, as in ``gatys``) minimises the same function from the
photo and is scored after 50, 100, 200 and 500 evaluations. Johnson et al. found their network's output matches
about 100 evaluations. Printed: the loss of each, and how many evaluations optimisation needed to beat the network.
Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from stylegram import images
from stylegram.fast import load_model
from stylegram.train import TrainOptions, perceptual_loss, style_targets, train
from stylegram.weights import load_vgg

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def quick_model(style: Path, iterations: int, crop: int, folder: Path) -> Path:
    """Train on scikit-image photos (no COCO here): enough to run the comparison, not to win it."""
    from PIL import Image
    from skimage import data

    photos = folder / "photos"
    photos.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"):
        Image.fromarray(getattr(data, name)()).convert("RGB").save(photos / f"{name}.png")
    out = folder / "quick.safetensors"
    train(TrainOptions(style=str(style), data=str(photos), output=str(out), iterations=iterations,
                       image_size=crop, checkpoint_every=max(iterations, 1)))
    return out


def lbfgs_losses(loss_of: object, start: torch.Tensor, marks: list[int]) -> dict[int, float]:
    """Loss of the best image after each number of evaluations in ``marks``."""
    x = start.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=marks[-1], max_eval=marks[-1], history_size=100,
                            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    best, seen, count = float("inf"), {}, [0]

    def closure() -> torch.Tensor:
        nonlocal best
        if count[0] >= marks[-1]:
            raise StopIteration
        opt.zero_grad()
        loss = loss_of(x)  # type: ignore[operator]
        loss.backward()
        count[0] += 1
        best = min(best, float(loss.detach()))
        if count[0] in marks:
            seen[count[0]] = best
        return loss.detach()

    try:
        while count[0] < marks[-1]:
            opt.step(closure)  # type: ignore[no-untyped-call]
    except StopIteration:
        pass
    return seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="a trained model (.safetensors)")
    p.add_argument("--train", type=int, default=0, help="without --model: train a quick one for N iterations")
    p.add_argument("--train-crop", type=int, default=256, help="crop size for --train (256 as in the paper)")
    p.add_argument("--style", type=Path, required=True, help="the style image the model was trained for")
    p.add_argument("--images", default="tubingen.jpg,golden_gate.jpg,brad_pitt.jpg")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--evals", default="50,100,200,500")
    args = p.parse_args()
    marks = sorted(int(x) for x in args.evals.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = args.model or quick_model(args.style, args.train, args.train_crop, Path(tmp))
        trained_for = time.perf_counter() - t0 if args.model is None else 0.0
        model = load_model(path)
        info = model.info
        saved = info.extra.get("options", {}) if isinstance(info.extra, dict) else {}
        o = TrainOptions(content_weight=info.content_weight, style_weight=info.style_weight, tv_weight=info.tv_weight,
                         **{k: tuple(saved[k]) for k in ("content_layers", "style_layers") if k in saved})
        vgg, _ = load_vgg(info.vgg_weights or "vgg16-caffe", pooling=o.pooling)
        style = images.to_tensor(images.resize_longest(images.load_image(args.style), info.style_size or o.style_size))
        targets = style_targets(vgg, style, o.style_layers)
        print(f"model {path.name}: width {info.width}, {info.iterations} training iterations"
              + (f" (trained here in {trained_for:.0f} s)" if trained_for else ""))
        print(f"{'image':16s} {'network':>10s} " + " ".join(f"{f'L-BFGS {m}':>12s}" for m in marks) + "  beaten after")
        for name in args.images.split(","):
            photo = images.to_tensor(images.resize_longest(images.load_image(SHARED / "images" / name), args.size))

            def loss_of(y: torch.Tensor, photo: torch.Tensor = photo) -> torch.Tensor:
                return perceptual_loss(vgg, y, photo, targets, o)["total"]

            with torch.no_grad():
                net = float(loss_of(model.stylize(photo)))
            seen = lbfgs_losses(loss_of, photo, marks)
            beaten = next((m for m in marks if seen.get(m, float("inf")) <= net), None)
            print(f"{name:16s} {net:10.4g} " + " ".join(f"{seen.get(m, float('nan')):12.4g}" for m in marks)
                  + f"  {beaten if beaten else '> ' + str(marks[-1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
