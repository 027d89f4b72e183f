"""How far one absolute β moves the balance: the paper's β expressed in the relative objective's units.

    .venv/bin/python benchmarks/balance_drift.py [--beta 90] [--sizes 256,512]

On the relative objective (stylegram's default) the style term is β_rel Σ w_l E_l / Σ w_l E_l⁰ and the content
term ‖F − P‖²/‖P‖²; on the paper's it is β Σ w_l E_l and ½‖F − P‖². The same balance needs
β_rel = β · 2 Σ w_l E_l⁰ / ‖P‖², which this prints per pair and size (style layers relu1_1 … relu5_1 with
neural-style's weights 64:16:4:1:1, content relu4_2, the offline VGG16, average pooling). A fixed β that gave
the same balance everywhere would print one number; the spread is what the relative objective removes.

Run by hand; never in CI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylegram.core import images
from stylegram.losses import gram_matrix
from stylegram.weights import load_vgg

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PAIRS = "tubingen:starry_night,golden_gate:the_scream,brad_pitt:picasso_selfport1907,tubingen:shipwreck"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--pairs", default=PAIRS)
    ap.add_argument("--beta", type=float, default=90.0)
    ap.add_argument("--sizes", default="256,512")
    args = ap.parse_args()
    vgg, _ = load_vgg("vgg16-caffe", pooling="avg")
    raw = [64, 16, 4, 1, 1]
    w = [x / sum(raw) for x in raw]
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'pair':44s}" + "".join(f"{s:>10d} px" for s in sizes))
    for pair in args.pairs.split(","):
        photo, painting = (next((args.shared / "images").glob(f"{n}.*")) for n in pair.split(":"))
        row = []
        for size in sizes:
            c = images.to_tensor(images.resize_longest(images.load_image(photo), size))
            s = images.to_tensor(images.resize_longest(images.load_image(painting), size))
            with torch.no_grad():
                p2 = float(vgg(c, ("relu4_2",))["relu4_2"].pow(2).sum())
                fs = vgg(s, LAYERS)
            energy = sum(wl * float(gram_matrix(fs[k]).pow(2).sum()) / (4 * fs[k].shape[1] ** 2)
                         for wl, k in zip(w, LAYERS, strict=True))
            row.append(args.beta * 2 * energy / p2)
        print(f"{pair:44s}" + "".join(f"{r:13.3g}" for r in row))


if __name__ == "__main__":
    main()
