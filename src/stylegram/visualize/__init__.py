"""What convolutional features respond to: Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks" (2014), on stylegram's VGG and on ZFNet.

* :func:`project`: one activation projected back to pixel space through the recorded max-pool switches, with
  the deconvnet, guided-backprop or gradient rule at each ReLU (:mod:`.project`, :mod:`.switches`), with its
  receptive-field box (:mod:`.receptive`).
* :func:`top_activations`: the k strongest activations of chosen maps over a folder, streamed (:mod:`.top`).
* :func:`occlusion`: occlusion sensitivity maps of one image (:mod:`.occlusion`).
* :func:`evolution`: the strongest projection of a few maps at each training checkpoint (:mod:`.evolution`).
* ZFNet itself lives in :mod:`stylegram.nets.zfnet`; its training in :mod:`.train_zfnet`, a generated data set
  to train it on in :mod:`.shapes`. Figures like the paper's: :mod:`.figures`.

Every function takes RGB float images (1, 3, H, W) in [0, 1], never modifies the network or the image, and
registers no hooks: it walks the network's named layers itself (:mod:`.layers`), so functional ReLUs are seen.
"""

from stylegram.visualize.evolution import Evolution, evolution
from stylegram.visualize.occlusion import OcclusionResult, occlusion
from stylegram.visualize.project import RULES, Projection, project
from stylegram.visualize.receptive import receptive_box, receptive_field
from stylegram.visualize.top import Hit, ImageFolder, TopMaps, TopResult, top_activations

__all__ = [
    "RULES",
    "Evolution",
    "Hit",
    "ImageFolder",
    "OcclusionResult",
    "Projection",
    "TopMaps",
    "TopResult",
    "evolution",
    "occlusion",
    "project",
    "receptive_box",
    "receptive_field",
    "top_activations",
]
