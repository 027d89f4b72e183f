"""Make the figures of docs/deconvnets.md with the project's own commands (``stylegram dn …``).

    python docs/make_deconvnets_figures.py [--size 96] [--iterations 5]

Writes scikit-image's greyscale photos to a temporary folder, learns the paper's two-layer model on them with
``stylegram dn learn`` (timed), then draws the filters (``dn filters``) and encodes one photo (``dn encode``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHOTOS = ("camera", "moon", "brick", "grass", "gravel", "coins")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="96")
    p.add_argument("--iterations", default="5")
    p.add_argument("--out", default=str(Path(__file__).parent / "deconvnets"))
    a = p.parse_args()
    from PIL import Image
    from skimage import data

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for name in PHOTOS:
            Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
        model = Path(tmp) / "model.safetensors"
        dn = [sys.executable, "-m", "stylegram", "dn"]
        t0 = time.perf_counter()
        subprocess.run([*dn, "learn", str(folder), "-o", str(model), "--size", a.size, "--iterations",
                        a.iterations], check=True)
        print(f"dn learn took {time.perf_counter() - t0:.0f} s")
        subprocess.run([*dn, "filters", str(model), "-o", str(out / "filters.png")], check=True)
        enc = Path(tmp) / "enc"
        subprocess.run([*dn, "encode", str(model), str(folder / "camera.png"), "-o", str(enc), "--size", "192"],
                       check=True)
        shutil.copy(enc / "reconstructions.png", out / "reconstructions.png")
        shutil.copy(enc / "summary.json", out / "camera_summary.json")


if __name__ == "__main__":
    main()
