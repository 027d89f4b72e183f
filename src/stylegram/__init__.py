"""stylegram: neural style transfer on PyTorch.

    import stylegram
    out = stylegram.stylize("photo.jpg", "painting.jpg", size=512, iterations=300)
    out.save("stylised.png")

Nothing happens at import time: no files are read and no weights are loaded until a function asks for them.
"""

from importlib.metadata import PackageNotFoundError, version

from .events import StepEvent
from .fast import FastStyleModel, ModelError, ModelInfo, load_model
from .gatys import GatysOptions, GatysResult, run, stylize
from .images import ImageError, load_image, save_image, to_pil, to_tensor
from .train import TrainOptions, TrainResult
from .vgg import VGG, layer_names
from .weights import WeightsError, WeightsUnavailable, load_vgg

try:
    __version__ = version("stylegram")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "VGG",
    "FastStyleModel",
    "GatysOptions",
    "GatysResult",
    "ImageError",
    "ModelError",
    "ModelInfo",
    "StepEvent",
    "TrainOptions",
    "TrainResult",
    "WeightsError",
    "WeightsUnavailable",
    "__version__",
    "layer_names",
    "load_image",
    "load_model",
    "load_vgg",
    "run",
    "save_image",
    "stylize",
    "to_pil",
    "to_tensor",
]
