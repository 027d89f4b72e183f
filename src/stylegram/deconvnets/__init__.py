"""Deconvolutional networks (Zeiler, Krishnan, Taylor & Fergus, CVPR 2010): multi-layer convolutional sparse coding.

Each layer explains its input (a greyscale, contrast-normalised image for layer 1, the maps of the layer below
after that) as a sum of sparse feature maps convolved with filters; layers are learned one after another,
without labels. The room holds:

- :func:`learn` (``learn.py``): the paper's learning, layer by layer, returning a :class:`DeconvNet`;
  ``model.encode(image)`` gives each layer's maps, the input rebuilt from each layer, the objective and the
  non-zero fraction; :func:`load_model` / ``model.save(path)`` read and write the model file (``model.py``).
- :func:`sparse_code` (``coding.py``): one coding problem, by the paper's inference (``inference.py``: CG
  z-steps, shrinkage x-steps, β continuation) or by ADMM (``admm.py``: SPORCO's ConvBPDN, per-frequency
  x-steps, on the paper's valid boundary through a mask or on the circular one).
- :class:`ConvBPDN` and :class:`ConvBPDNDictLearn` (``admm.py``, ``dictlearn.py``): the circular-boundary
  problems of SPORCO, for side-by-side comparison (``benchmarks/bench_deconvnets.py``).
- Options (``options.py``): :class:`LayerSpec`, :class:`InferenceOptions`, :class:`LearnOptions`,
  :class:`AdmmOptions`, :class:`DictLearnOptions`; figures (``figures.py``).

Everything runs in PyTorch, on the CPU or CUDA alike, in float32 (float64 when the tensors given are).

    model = learn(pictures, layers=[LayerSpec(maps=9, filter=7), LayerSpec(maps=45, filter=7, lam=10)])
    code = model.encode(image)                       # image: (1, 3, H, W) RGB in [0, 1]
    code.layers[1].reconstruction                    # the input rebuilt from layer 2's maps alone
"""

from stylegram.deconvnets.admm import AdmmResult, ConvBPDN
from stylegram.deconvnets.coding import SparseCode, sparse_code
from stylegram.deconvnets.dictlearn import ConvBPDNDictLearn
from stylegram.deconvnets.layer import Layer
from stylegram.deconvnets.learn import learn
from stylegram.deconvnets.model import DeconvModelError, DeconvNet, Encoding, LayerCode, load_model
from stylegram.deconvnets.options import (
    PAPER_LAYERS,
    AdmmOptions,
    DictLearnOptions,
    InferenceOptions,
    LayerSpec,
    LearnOptions,
)

__all__ = [
    "PAPER_LAYERS",
    "AdmmOptions",
    "AdmmResult",
    "ConvBPDN",
    "ConvBPDNDictLearn",
    "DeconvModelError",
    "DeconvNet",
    "DictLearnOptions",
    "Encoding",
    "InferenceOptions",
    "Layer",
    "LayerCode",
    "LayerSpec",
    "LearnOptions",
    "SparseCode",
    "learn",
    "load_model",
    "sparse_code",
]
