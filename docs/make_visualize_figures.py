"""Make the figures of docs/visualize.md with stylegram's own commands (run from the repository root).

    .venv/bin/python docs/make_visualize_figures.py [--out docs/visualize] [--crops 240]

Inputs are photos the project may use: scikit-image's astronaut, coffee and chelsea, and random crops of
scikit-image photos as the "data set" for the top-9 figure (written to a temporary folder, never committed).
The network is the offline VGG16 (``vgg16-caffe``) with max pooling, as trained. It has no classifier, so the
occlusion figure shows panels (a)–(c); with torchvision's weights (``--model vgg16``) it adds (d) and (e).
The ZFNet figure trains a narrow ZFNet on the generated shapes data set and follows a few maps over epochs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def stylegram(*args: object) -> None:
    command = [sys.executable, "-m", "stylegram", *map(str, args)]
    print("$ stylegram", " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True)


def photos(folder: Path) -> dict[str, Path]:
    from skimage import data

    out = {}
    for name in ("astronaut", "coffee", "chelsea"):
        out[name] = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(out[name])
    return out


def crops(folder: Path, count: int, side: int = 112) -> Path:
    from skimage import data

    sources = [getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
                                            "brick", "grass", "gravel")]
    sources = [s if s.ndim == 3 else np.stack([s] * 3, axis=-1) for s in sources]
    rng = np.random.default_rng(0)
    root = folder / "crops"
    root.mkdir()
    for i in range(count):
        p = sources[i % len(sources)]
        y, x = rng.integers(0, p.shape[0] - side), rng.integers(0, p.shape[1] - side)
        Image.fromarray(p[y : y + side, x : x + side]).save(root / f"crop_{i:04d}.png")
    return root


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/visualize")
    p.add_argument("--crops", type=int, default=240)
    ns = p.parse_args()
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pics = photos(work)
        stylegram("visualize", "project", pics["astronaut"], "--layer", "relu4_3", "-o", out / "project_relu4_3.png")
        stylegram("visualize", "project", pics["chelsea"], "--layer", "relu5_3", "-o", out / "project_relu5_3.png")
        stylegram("visualize", "project", pics["chelsea"], "--layer", "relu5_3", "--rule", "guided",
                  "-o", out / "project_relu5_3_guided.png")
        stylegram("visualize", "top", crops(work, ns.crops), "--layers", "relu2_2,relu3_3,relu4_3,relu5_3",
                  "--random", "2", "--seed", "3", "-o", out / "top9.png")
        stylegram("visualize", "occlusion", pics["coffee"], "--layer", "relu5_3", "--window", "48", "--stride",
                  "12", "-o", out / "occlusion_coffee.png")
        stylegram("zfnet", "shapes", work / "shapes", "--per-class", "60", "--size", "72")
        stylegram("zfnet", "train", "--data", work / "shapes", "-o", work / "zfnet", "--epochs", "60", "--size", "64",
                  "--width", "0.25", "--hidden", "128", "--batch-size", "16", "--checkpoint-every", "15")
        checkpoints = sorted((work / "zfnet").glob("epoch_*.safetensors"))
        stylegram("visualize", "evolution", *checkpoints, "--images", work / "shapes", "--layer", "relu2",
                  "--channels", "0,5,10,15,20,25", "-o", out / "zfnet_evolution.png")
        stylegram("visualize", "occlusion", work / "shapes" / "triangle" / "triangle_0003.png", "--zfnet",
                  checkpoints[-1], "--layer", "relu5", "--size", "0", "--window", "16", "--stride", "4",
                  "-o", out / "zfnet_occlusion.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
