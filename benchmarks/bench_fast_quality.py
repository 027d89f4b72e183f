"""Quality of a trained feed-forward network against optimisation, with one evaluator for both.

    .venv/bin/python benchmarks/bench_fast_quality.py --model starry.safetensors --style STARRY.jpg
    .venv/bin/python benchmarks/bench_fast_quality.py --train-minutes 36 --style STARRY.jpg   # train one here first

For each held-out photo (default: ../shared/images tubingen, golden_gate, brad_pitt), the evaluator is the loss the
network was trained to minimise (``train.perceptual_loss`` with the model's weights and layers) for that photo.
The network's output gets one value; L-BFGS (strong-Wolfe, as in ``gatys``) minimises the same function from the
photo and is scored after 50, 100, 200 and 500 evaluations. Johnson et al. found their network's output matches
about 100 evaluations. Printed: the loss of each, and how many evaluations optimisation needed to beat the network.

Without ``--model`` a network is trained here, for ``--train`` iterations and/or ``--train-minutes`` of training
(whichever ends first; the time budget stops ``train`` through its ``on_step`` callback). There is no COCO here:
the photos are scikit-image's bundled ones (8 colour, 7 greyscale), none of them a held-out photo, each expanded
into flipped sub-regions of 40-100 % of its sides so that the random crops of ``train`` vary in content and scale.
Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stylegram.core import images
from stylegram.core.events import StepEvent
from stylegram.feedforward.model import load_model
from stylegram.feedforward.train import TrainOptions, perceptual_loss, style_targets, train
from stylegram.weights import load_vgg

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# scikit-image photos that ship with the package (no download); colorwheel, logo and the microscopy stacks are
# not photos, and eagle, skin, lily need the optional data download.
COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "stereo_motorcycle")
GREY = ("camera", "coins", "clock", "moon", "grass", "gravel", "brick")


def training_photos(folder: Path, variants: int, seed: int = 0) -> tuple[int, int]:
    """Write each scikit-image photo and ``variants - 1`` random flipped sub-regions of it; (sources, files)."""
    import numpy as np
    from PIL import Image, ImageOps
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sources = files = 0
    for name in (*COLOUR, *GREY):
        try:
            array = getattr(data, name)()
        except Exception as e:  # a data file this scikit-image version does not ship
            print(f"  skipping scikit-image {name}: {type(e).__name__}", flush=True)
            continue
        if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
            array = array[0]
        photo = Image.fromarray(np.asarray(array)).convert("RGB")
        sources += 1
        w, h = photo.size
        for v in range(variants):
            if v == 0:
                region = photo
            else:  # a sub-region of 40-100 % of each side: the crops of train() then see the photo at other scales
                fw, fh = rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0)
                cw, ch = max(16, int(w * fw)), max(16, int(h * fh))
                left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
                region = photo.crop((left, top, left + cw, top + ch))
            if v % 2 == 1:
                region = ImageOps.mirror(region)
            region.save(folder / f"{name}-{v:02d}.png")
            files += 1
    return sources, files


def trained_model(style: Path, iterations: int, minutes: float, crop: int, variants: int, folder: Path,
                  save: Path | None) -> Path:
    """Train a network here for ``iterations`` or ``minutes`` of training, whichever ends first."""
    sources, files = training_photos(folder / "photos", variants)
    out = folder / "trained.safetensors"
    budget = minutes * 60 if minutes > 0 else float("inf")
    start = time.perf_counter()

    def on_step(event: StepEvent) -> bool:
        if event.iteration % 25 == 0:
            print(f"  iteration {event.iteration}: loss {event.losses['total']:.4g}, {event.elapsed:.0f} s",
                  flush=True)
        return event.elapsed >= budget

    o = TrainOptions(style=str(style), data=str(folder / "photos"), output=str(out), iterations=iterations,
                     image_size=crop, checkpoint_every=500, workers=0)  # 2 cores: decoding in the main process
    print(f"training on {files} files from {sources} scikit-image photos, {crop} px crops, batch {o.batch_size}, "
          f"at most {iterations} iterations" + (f" or {minutes:g} min" if minutes > 0 else ""), flush=True)
    result = train(o, on_step)
    rows = [line.split(",") for line in (o.workdir / "log.csv").read_text().splitlines()[1:]]
    first = [float(r[4]) for r in rows[:50]]
    last = [float(r[4]) for r in rows[-50:]]
    print(f"trained {result.iterations} iterations ({result.iterations * o.batch_size} crops, "
          f"{result.iterations * o.batch_size / files:.1f} passes over the files) in {result.elapsed:.0f} s "
          f"of training ({time.perf_counter() - start:.0f} s with set-up); mean training loss of the first 50 "
          f"iterations {sum(first) / len(first):.4g}, of the last 50 {sum(last) / len(last):.4g}", flush=True)
    if save is not None:
        shutil.copyfile(out, save)
    return out


def lbfgs_losses(loss_of: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor,
                 marks: list[int]) -> dict[int, float]:
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
        loss = loss_of(x)
        loss.backward()  # type: ignore[no-untyped-call]
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
    p.add_argument("--train", type=int, default=0,
                   help="without --model: train one here for at most N iterations (0: 40000 with --train-minutes)")
    p.add_argument("--train-minutes", type=float, default=0.0,
                   help="without --model: stop training after this many minutes (the set-up not counted)")
    p.add_argument("--train-crop", type=int, default=128, help="crop size for training (the paper: 256)")
    p.add_argument("--train-variants", type=int, default=16,
                   help="files written per scikit-image photo: itself and flipped sub-regions")
    p.add_argument("--save-model", type=Path, help="also keep the model trained here at this path")
    p.add_argument("--style", type=Path, required=True, help="the style image the model was trained for")
    p.add_argument("--images", default="tubingen.jpg,golden_gate.jpg,brad_pitt.jpg")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--evals", default="50,100,200,500")
    args = p.parse_args()
    marks = sorted(int(x) for x in args.evals.split(","))
    if args.model is None and args.train <= 0 and args.train_minutes <= 0:
        p.error("give --model, or --train and/or --train-minutes to train one here")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.model is not None:
            path = args.model
        else:
            path = trained_model(args.style, args.train if args.train > 0 else 40000, args.train_minutes,
                                 args.train_crop, args.train_variants, Path(tmp), args.save_model)
        trained_for = time.perf_counter() - t0 if args.model is None else 0.0
        model = load_model(path)
        info = model.info
        saved = info.extra.get("options", {}) if isinstance(info.extra, dict) else {}
        layers: dict[str, Any] = {k: tuple(saved[k]) for k in ("content_layers", "style_layers") if k in saved}
        if saved.get("pooling") in ("avg", "max"):
            layers["pooling"] = saved["pooling"]
        o = TrainOptions(content_weight=info.content_weight, style_weight=info.style_weight, tv_weight=info.tv_weight,
                         **layers)
        vgg, _ = load_vgg(info.vgg_weights or "vgg16-caffe", pooling=o.pooling)
        style = images.to_tensor(images.resize_longest(images.load_image(args.style), info.style_size or o.style_size))
        targets = style_targets(vgg, style, o.style_layers)
        print(f"model {path.name}: width {info.width}, {info.iterations} training iterations"
              + (f" (trained here, {trained_for:.0f} s with set-up)" if trained_for else ""), flush=True)
        print(f"{'image':16s} {'network':>10s} " + " ".join(f"{f'L-BFGS {m}':>12s}" for m in marks) + "  beaten after",
              flush=True)
        for name in args.images.split(","):
            t1 = time.perf_counter()
            photo = images.to_tensor(images.resize_longest(images.load_image(SHARED / "images" / name), args.size))

            def loss_of(y: torch.Tensor, photo: torch.Tensor = photo) -> torch.Tensor:
                return perceptual_loss(vgg, y, photo, targets, o)["total"]

            with torch.no_grad():
                net = float(loss_of(model.stylize(photo)))
            seen = lbfgs_losses(loss_of, photo, marks)
            beaten = next((m for m in marks if seen.get(m, float("inf")) <= net), None)
            print(f"{name:16s} {net:10.4g} " + " ".join(f"{seen.get(m, float('nan')):12.4g}" for m in marks)
                  + f"  {beaten if beaten else '> ' + str(marks[-1])}   ({time.perf_counter() - t1:.0f} s)",
                  flush=True)
        print(f"total {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
