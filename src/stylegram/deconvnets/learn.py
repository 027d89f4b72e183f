"""Learning a deconvolutional network, layer by layer (the paper's Algorithm 1).

For each layer: initialise the filters (random, unit norm) and the maps (zeros); then, every epoch, infer all
training images' maps with the continuation (warm-started from the previous epoch's maps, as the paper keeps
them) and refit the filters to those maps. Layer l + 1 is then learned on layer l's inferred maps.

A checkpoint, taken after any epoch, holds everything the next epoch needs (the filters, the maps it warm-starts
from, the layer's input), so a resumed run ends with exactly the filters of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from stylegram.core import images
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.deconvnets.contrast import preprocess
from stylegram.deconvnets.filters import update_filters
from stylegram.deconvnets.inference import infer, summed_terms
from stylegram.deconvnets.layer import Layer, initial_layer
from stylegram.deconvnets.model import DeconvNet
from stylegram.deconvnets.options import PAPER_LAYERS, InferenceOptions, LayerSpec, LearnOptions
from stylegram.optim import checkpoint
from stylegram.optim.checkpoint import identity

FORMAT = "stylegram-deconvnet-checkpoint-1"


@dataclass(frozen=True)
class Checkpointing:
    path: Path
    every: int  # epochs between checkpoints


def training_batch(pictures: Sequence[Tensor | Image.Image], size: int, contrast: str) -> Tensor:
    """(N, 1, size, size): each picture's central square, scaled, greyscale and contrast normalised.

    Pictures are PIL images or (1, 3, H, W) RGB tensors in [0, 1].
    """
    if not pictures:
        raise UsageError("learning needs at least one image")
    squares = []
    for p in pictures:
        pil = p if isinstance(p, Image.Image) else images.to_pil(p)
        squares.append(images.to_tensor(images.resize_to(images.center_square(pil), (size, size))))
    return preprocess(torch.cat(squares), contrast)


def state_identity(layers: Sequence[LayerSpec], learn: LearnOptions, inference: InferenceOptions,
                   inputs: Sequence[str]) -> str:
    """What a checkpoint must match to be resumed: the architecture, options and the training images."""
    return identity({"layers": [s.to_dict() for s in layers], "learn": learn.to_dict(),
                     "inference": inference.to_dict(), "inputs": list(inputs)})


def load_checkpoint(path: str | os.PathLike[str], expected: str) -> dict[str, Any]:
    """A learning checkpoint made with the same options and images; CheckpointError otherwise."""
    return checkpoint.load(path, json.loads(expected), fmt=FORMAT, what="deconvnet learning")


def learn(pictures: Sequence[Tensor | Image.Image], layers: Sequence[LayerSpec] = PAPER_LAYERS,
          options: LearnOptions | None = None, inference: InferenceOptions | None = None, *,
          on_step: OnStep | None = None, device: torch.device | str = "cpu",
          checkpointing: Checkpointing | None = None, resume: dict[str, Any] | None = None,
          inputs: Sequence[str] = ()) -> DeconvNet:
    """Learn ``layers`` on ``pictures``; returns the model (its ``record`` says how it was made).

    One event per epoch, tagged with its layer (``stage``), carrying the objective after the filter update and
    the non-zero fraction of the maps; ``on_step`` returning True stops after that epoch, with the filters so
    far (``record["stopped"]``). ``resume`` is a state from :func:`load_checkpoint`.
    """
    lo = options or LearnOptions()
    y = training_batch(pictures, lo.size, lo.contrast)
    return learn_from(y, layers, lo, inference, on_step=on_step, device=device, checkpointing=checkpointing,
                      resume=resume, inputs=inputs)


def learn_from(signal: Tensor, layers: Sequence[LayerSpec] = PAPER_LAYERS, options: LearnOptions | None = None,
               inference: InferenceOptions | None = None, *, on_step: OnStep | None = None,
               device: torch.device | str = "cpu", checkpointing: Checkpointing | None = None,
               resume: dict[str, Any] | None = None, inputs: Sequence[str] = ()) -> DeconvNet:
    """:func:`learn` on signals already preprocessed: (N, 1, H, W), e.g. with one's own normalisation
    (``options.size`` and ``options.contrast`` are then only recorded)."""
    lo, io_ = options or LearnOptions(), inference or InferenceOptions()
    dev = torch.device(device)
    ident = state_identity(layers, lo, io_, inputs)
    trainer = _Trainer(list(layers), lo, io_, ident, dev, on_step, checkpointing)
    done, stopped, terms = trainer.run(signal.to(dev), resume)
    record = {"layers_learned": len(done), "epochs": lo.iterations, "stopped": stopped,
              "seconds": round(trainer.elapsed, 2), "objective": terms, "images": int(signal.shape[0]),
              "learn": lo.to_dict(), "inputs": list(inputs)}
    return DeconvNet(tuple(done), io_, lo.contrast, record)


class _Trainer:
    def __init__(self, specs: list[LayerSpec], options: LearnOptions, inference: InferenceOptions, ident: str,
                 device: torch.device, on_step: OnStep | None, checkpointing: Checkpointing | None) -> None:
        self.specs, self.o, self.inference, self.ident = specs, options, inference, ident
        self.device, self.on_step, self.checkpointing = device, on_step, checkpointing
        self.elapsed = 0.0

    def run(self, y: Tensor, resume: dict[str, Any] | None) -> tuple[list[Layer], bool, list[dict[str, float]]]:
        t0 = time.perf_counter()
        done: list[Layer] = []
        terms: list[dict[str, float]] = []
        start_layer, start_epoch, maps = 0, 0, None
        gen = torch.Generator().manual_seed(self.o.seed)
        if resume is not None:
            done, terms = [_layer_from(s, self.specs[i]) for i, s in enumerate(resume["done"])], resume["terms"]
            start_layer, start_epoch = int(resume["layer"]), int(resume["epoch"])
            y, maps = resume["input"].to(self.device), resume["maps"].to(self.device)
            gen.set_state(resume["generator"])
            self.elapsed = float(resume["seconds"])
        stopped = False
        for index in range(start_layer, len(self.specs)):
            if index > start_layer or resume is None:
                layer = initial_layer(self.specs[index], y.shape[1], gen).to(self.device)
                maps, start_epoch = None, 0
            else:
                layer = _layer_from(resume["current"], self.specs[index]).to(self.device)
            layer, maps, stopped, last = self._layer(index, layer, y, maps, start_epoch, done, terms, gen, t0)
            done.append(layer)
            terms.append(last)
            if stopped or index + 1 == len(self.specs):
                break
            # The next layer's input: this layer's sparse maps, inferred with its final filters.
            y = infer(y, layer, self.inference, init=maps).maps
        self.elapsed += time.perf_counter() - t0
        return done, stopped, terms

    def _layer(self, index: int, layer: Layer, y: Tensor, maps: Tensor | None, start: int, done: list[Layer],
               terms: list[dict[str, float]], gen: torch.Generator,
               t0: float) -> tuple[Layer, Tensor, bool, dict[str, float]]:
        o, stopped, last = self.o, False, {}
        for epoch in range(start, o.iterations):
            result = infer(y, layer, self.inference, init=maps)
            maps = result.smooth
            layer = update_filters(y, result.maps, layer, o.filter_iterations)
            last = summed_terms(y, result.maps, layer.weight(), layer.spec.lam, layer.spec.p)
            if self.on_step is not None:
                event = StepEvent(epoch + 1, o.iterations, last, self.elapsed + time.perf_counter() - t0,
                                  stage=index, stages=len(self.specs))
                stopped = bool(self.on_step(event))
            c = self.checkpointing
            if c is not None and not stopped and epoch + 1 < o.iterations and (epoch + 1) % c.every == 0:
                self._save(c.path, index, epoch + 1, layer, maps, y, done, terms, gen, t0)
            if stopped:
                break
        assert maps is not None
        return layer, maps, stopped, last

    def _save(self, path: Path, index: int, epoch: int, layer: Layer, maps: Tensor, y: Tensor, done: list[Layer],
              terms: list[dict[str, float]], gen: torch.Generator, t0: float) -> None:
        state = {"options": self.ident, "layer": index, "epoch": epoch,
                 "current": _layer_state(layer), "done": [_layer_state(d) for d in done], "terms": terms,
                 "maps": maps.cpu(), "input": y.cpu(), "generator": gen.get_state(),
                 "seconds": self.elapsed + time.perf_counter() - t0}
        checkpoint.save(path, state, fmt=FORMAT)


def _layer_state(layer: Layer) -> dict[str, Tensor]:
    return {"filters": layer.filters.cpu(), "connectivity": layer.connectivity.cpu()}


def _layer_from(state: dict[str, Tensor], spec: LayerSpec) -> Layer:
    return Layer(spec, state["filters"], state["connectivity"].to(torch.bool))
