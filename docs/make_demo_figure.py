"""Rebuild docs/demo.png: the demo's content, style and result side by side, labelled.

    .venv/bin/stylegram demo -o out/demo.png && .venv/bin/python docs/make_demo_figure.py out/demo.png
"""

import sys
from pathlib import Path

from stylegram.core import images
from stylegram.core.figures import panel_row
from stylegram.core.samples import demo_content, generated_painting

result = images.load_image(sys.argv[1])
size = result.height
panels = [images.resize_longest(demo_content(), size), generated_painting(384, seed=7).resize((size, size)), result]
figure = panel_row(panels, ["content: skimage astronaut", "style: generated painting", "stylegram demo"])
images.save_image(figure.image, Path(__file__).with_name("demo.png"))
