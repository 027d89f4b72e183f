"""VGG as an ImageNet classifier: the use case behind ``stylegram classify``.

The image is centre-cropped to a square and scaled to 224×224, as the networks were evaluated; the weights must
include the classifier (fc6–fc8): torchvision's VGG16/19 files do, the packaged Caffe VGG16 does not.
"""

from __future__ import annotations

import os

import torch

from stylegram.core import images
from stylegram.core.device import resolve_device
from stylegram.core.errors import UsageError
from stylegram.core.resize import center_square
from stylegram.nets.imagenet import class_names, top_classes
from stylegram.weights import load_vgg


def classify(image: str | os.PathLike[str], *, model: str = "vgg16", weights: str | None = None, top: int = 5,
             device: str | torch.device | None = None) -> list[tuple[str, float]]:
    """The ``top`` most probable ImageNet classes of ``image`` as (name, probability), most probable first."""
    if not 1 <= top <= len(class_names()):
        raise UsageError(f"--top must be between 1 and {len(class_names())}, got {top}")
    dev = resolve_device(device)
    img = images.load_image(image)
    vgg, _ = load_vgg(model, path=weights, pooling="max", classifier=True, device=dev)
    if vgg.classifier is None:
        raise UsageError(f"the weights '{model}' have no classifier (fc6–fc8); use --model vgg16 or vgg19 "
                         "with torchvision's weights file")
    x = images.to_tensor(images.resize_to(center_square(img), (224, 224))).to(dev)
    with torch.no_grad():
        probs = vgg.classify(x).softmax(dim=1)[0]
    return top_classes(probs.cpu(), top)
