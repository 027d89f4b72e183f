"""stylegram: neural style transfer on PyTorch.

    import stylegram
    out = stylegram.stylize("photo.jpg", "painting.jpg", size=512, iterations=300)
    out.save("stylised.png")

Nothing happens at import time: no files are read and no weights are loaded until a function asks for them.
"""

from stylegram.core.errors import StylegramError, UsageError
from stylegram.core.events import StepEvent
from stylegram.core.images import ImageError, load_image, save_image, to_pil, to_tensor
from stylegram.core.record import stylegram_version
from stylegram.feedforward.model import FastStyleModel, ModelError, ModelInfo, load_model
from stylegram.feedforward.train import TrainOptions, TrainResult
from stylegram.gatys import GatysOptions, GatysResult, StylizeJob, run, stylize
from stylegram.nets.vgg import VGG, layer_names
from stylegram.weights import WeightsError, WeightsUnavailable, load_vgg

__version__ = stylegram_version()

__all__ = [
    "VGG",
    "FastStyleModel",
    "GatysOptions",
    "GatysResult",
    "ImageError",
    "ModelError",
    "ModelInfo",
    "StepEvent",
    "StylegramError",
    "StylizeJob",
    "TrainOptions",
    "TrainResult",
    "UsageError",
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
