"""Rebuild docs/superres/coffee_x4.png: low resolution | bicubic | stylegram model(s) | original, on a held-out photo.

    .venv/bin/python docs/make_superres_figure.py [--model sr4] [--model sr4-feature.safetensors]
                                                  [--photo coffee] [--crop LEFT,TOP,SIZE]

Made with the project's own commands: ``stylegram sr-data --split held-out`` writes the photo,
``stylegram upscale`` enlarges its low-resolution version with each model. The low-resolution image is the one
``stylegram eval-sr`` scores (Gaussian blur σ = 1, bicubic ↓4, 8 bits); bicubic is eval-sr's too (Pillow's).
Each panel shows the same crop of the ×4 result, enlarged ×2 with nearest-neighbour so pixels stay visible; the
labels give PSNR-Y / SSIM-Y of the whole image (border cropped), as eval-sr computes them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from stylegram.core import images
from stylegram.core.figures import panel_row
from stylegram.feedforward import metrics
from stylegram.feedforward.evalsets import find_set
from stylegram.feedforward.evaluate import bicubic
from stylegram.feedforward.model import read_model_file
from stylegram.feedforward.shipped import resolve_model

SCALE = 4
STYLEGRAM = [sys.executable, "-m", "stylegram"]


def run(*args: str) -> None:
    subprocess.run([*STYLEGRAM, *args], check=True)


def label(name: str, sr: Image.Image, hr: Image.Image) -> str:
    s = metrics.scores(images.to_tensor(sr), images.to_tensor(hr), SCALE)
    return f"{name}\n{float(s['psnr_y']):.2f} dB / {float(s['ssim_y']):.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=None, help="model file or shipped name (repeatable)")
    p.add_argument("--photo", default="coffee", help="a held-out photo (see stylegram sr-data --split held-out)")
    p.add_argument("--crop", default="312,196,144", help="LEFT,TOP,SIZE of the shown crop, in output pixels")
    ns = p.parse_args()
    left, top, size = (int(v) for v in ns.crop.split(","))
    box = (left, top, left + size, top + size)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run("sr-data", str(work / "held"), "--split", "held-out", "--quiet")
        (work / "one").mkdir()
        (work / "one" / f"{ns.photo}.png").write_bytes((work / "held" / f"{ns.photo}.png").read_bytes())
        hr_t, lr_t = find_set(work / "one", SCALE).images[0].load(SCALE, 1.0)
        hr, lr = images.to_pil(hr_t), images.to_pil(lr_t)
        lr.save(work / "lr.png")
        panels = [(f"low resolution (1/{SCALE} size)", lr.resize(hr.size, Image.Resampling.NEAREST)),
                  (label("bicubic", images.to_pil(bicubic(lr_t, SCALE)), hr), images.to_pil(bicubic(lr_t, SCALE)))]
        for k, model in enumerate(ns.model or ["sr4"]):
            out = work / f"sr{k}.png"
            run("upscale", str(work / "lr.png"), "-o", str(out), "--model", model, "--quiet")
            sr = Image.open(out).convert("RGB")
            loss = read_model_file(resolve_model(model))[1].extra.get("loss", "?")
            short = {"feature": "feat"}.get(loss, loss)  # the paper's names: l_pixel, l_feat
            name = f"stylegram {Path(model).stem} (l_{short})"
            panels.append((label(name, sr, hr), sr))
        panels.append(("original", hr))
    shown = [im.crop(box).resize((2 * size, 2 * size), Image.Resampling.NEAREST) for _, im in panels]
    figure = panel_row(shown, [text for text, _ in panels],
                       title=f"x{SCALE} super-resolution of a held-out photo (skimage {ns.photo}), crop at "
                             f"{left},{top}")
    target = Path(__file__).with_name("superres") / f"{ns.photo}_x{SCALE}.png"
    images.save_image(figure.image, target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
