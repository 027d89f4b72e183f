"""Gatys et al., "A Neural Algorithm of Artistic Style": style transfer by optimising an image.

:mod:`.options` (every option and its default), :mod:`.features` (VGG responses in the run's precision, the
targets' record, up-front checks), :mod:`.targets`, :mod:`.objective`, :mod:`.tiled` (the exact gradient tile
by tile), :mod:`.memory` (the memory plan), :mod:`.run` (one optimisation on the shared loop of
:mod:`stylegram.optim`), :mod:`.multiscale` (coarse to fine), :mod:`.reconstruct` (the paper's figures) and
:mod:`.stylize` (the use cases: images or files in, an image or a saved file with its record out).
"""

from stylegram.gatys.features import Targets, check, features
from stylegram.gatys.objective import Objective
from stylegram.gatys.options import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS, GatysOptions
from stylegram.gatys.run import GatysResult, initial_image, prepare, run, style_size
from stylegram.gatys.stylize import StylizeJob, stylize
from stylegram.gatys.targets import compute_targets

__all__ = [
    "PAPER_CONTENT_LAYERS",
    "PAPER_STYLE_LAYERS",
    "GatysOptions",
    "GatysResult",
    "Objective",
    "StylizeJob",
    "Targets",
    "check",
    "compute_targets",
    "features",
    "initial_image",
    "prepare",
    "run",
    "style_size",
    "stylize",
]
