"""The use cases behind ``stylegram dn``: checked jobs that do every check before the long work, then write
their outputs atomically, each with the record of how it was made."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stylegram.core import images
from stylegram.core.atomic import atomic_write_bytes, atomic_write_text, check_writable
from stylegram.core.device import resolve_device
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.record import describe_file, new_record
from stylegram.deconvnets import figures
from stylegram.deconvnets.learn import Checkpointing, learn, load_checkpoint, state_identity
from stylegram.deconvnets.model import DeconvNet, load_model
from stylegram.deconvnets.options import PAPER_LAYERS, InferenceOptions, LayerSpec, LearnOptions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm")


def layer_specs(layers: int, maps: Sequence[int] | None, filter_size: int | None, lam: Sequence[float] | None,
                p: float | None) -> tuple[LayerSpec, ...]:
    """Layer specs from the command line's lists; defaults are the paper's two layers."""
    if layers < 1:
        raise UsageError(f"--layers must be at least 1, got {layers}")
    if maps is None and layers > len(PAPER_LAYERS):
        raise UsageError(f"give --maps for {layers} layers (the defaults cover {len(PAPER_LAYERS)})")
    maps = list(maps) if maps is not None else [s.maps for s in PAPER_LAYERS[:layers]]
    if len(maps) != layers:
        raise UsageError(f"--maps lists {len(maps)} value(s) for {layers} layer(s)")
    if lam is None and layers > len(PAPER_LAYERS):
        raise UsageError(f"give --lambda for {layers} layers (the defaults cover {len(PAPER_LAYERS)})")
    lams = list(lam) if lam is not None else [s.lam for s in PAPER_LAYERS[:layers]]
    if len(lams) == 1:
        lams *= layers
    if len(lams) != layers:
        raise UsageError(f"--lambda lists {len(lams)} value(s) for {layers} layer(s); give one or one per layer")
    base = PAPER_LAYERS[0]
    return tuple(LayerSpec(maps=m, filter=filter_size or base.filter, lam=v, p=base.p if p is None else p)
                 for m, v in zip(maps, lams, strict=True))


class LearnJob:
    """``stylegram dn learn``: the images of a folder in, a model file out (with checkpoints and resume)."""

    def __init__(self, folder: str | os.PathLike[str], output: str | os.PathLike[str], specs: Sequence[LayerSpec],
                 options: LearnOptions, inference: InferenceOptions, *, device: str | None = None,
                 checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 1,
                 resume: str | os.PathLike[str] | None = None) -> None:
        self.files = image_files(folder)
        self.output = check_writable(output, self.files, "model")
        if self.output.suffix.lower() != ".safetensors":
            raise UsageError(f"the model file must end in .safetensors, got '{os.fspath(output)}'")
        if checkpoint_every < 1:
            raise UsageError(f"--checkpoint-every must be at least 1, got {checkpoint_every}")
        if checkpoint is not None:
            check_writable(checkpoint, [*self.files, self.output], "checkpoint")
        self.specs, self.options, self.inference = tuple(specs), options, inference
        self.device = resolve_device(device)
        self.pictures = [images.load_image(f) for f in self.files]
        self.inputs = [f"{d['file']}:{d['sha256']}" for d in map(describe_file, self.files)]
        ident = state_identity(self.specs, options, inference, self.inputs)
        self.resume = None if resume is None else load_checkpoint(resume, ident)
        self.checkpointing = None if checkpoint is None else Checkpointing(Path(checkpoint), checkpoint_every)
        self.total = len(self.specs) * options.iterations
        self.done = 0 if self.resume is None else (
            int(self.resume["layer"]) * options.iterations + int(self.resume["epoch"]))

    def run(self, on_step: OnStep | None = None) -> DeconvNet:
        model = learn(self.pictures, self.specs, self.options, self.inference, on_step=on_step, device=self.device,
                      checkpointing=self.checkpointing, resume=self.resume, inputs=self.inputs)
        model.record = new_record("deconvnets", self.device, inference=self.inference.to_dict(),
                                  layers=[s.to_dict() for s in self.specs], **model.record)
        model.save(self.output)
        return model


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; UsageError when there is none."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"'{os.fspath(folder)}' is not a folder" if root.exists() else
                         f"folder not found: '{os.fspath(folder)}'")
    files = sorted(f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"no images in '{os.fspath(folder)}' (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


class EncodeJob:
    """``stylegram dn encode``: maps, reconstructions and a summary of one image, written to a folder."""

    def __init__(self, model: str | os.PathLike[str], image: str | os.PathLike[str], output: str | os.PathLike[str],
                 *, size: int | None = None, device: str | None = None,
                 inference: dict[str, Any] | None = None) -> None:
        self.device = resolve_device(device)
        self.model_path, self.output = Path(model), Path(output)
        if self.output.exists() and not self.output.is_dir():
            raise UsageError(f"cannot write to '{os.fspath(output)}': it is a file, not a folder")
        check_writable(self.output / "summary.json", [model, image], "summary")
        if size is not None and size < 8:
            raise UsageError(f"--size must be at least 8, got {size}")
        self.model = load_model(model, self.device)
        self.inference = self.model.inference.replace(**(inference or {}))
        pil = images.load_image(image)
        self.image = images.to_tensor(images.resize_longest(pil, size) if size else pil)
        self.image_path = Path(image)
        self.total = len(self.model.layers) * len(self.inference.betas()) * self.inference.alternations

    def run(self, on_step: OnStep | None = None) -> dict[str, Any]:
        from safetensors.torch import save

        asked: list[bool] = []

        def step(event: StepEvent) -> bool:
            stop = bool(on_step(event)) if on_step is not None else False
            asked.append(stop)
            return stop

        code = self.model.encode(self.image.to(self.device), inference=self.inference, on_step=step)
        record = new_record("deconvnets-encode", self.device, model=describe_file(self.model_path),
                            image=describe_file(self.image_path), inference=self.inference.to_dict())
        out, written = self.output, []
        inp = figures.flat(code.input)[0]
        written.append(images.save_image(figures.signed_image(inp), out / "input.png", record))
        recs = [figures.flat(c.reconstruction)[0] for c in code.layers]
        fig = figures.reconstructions_figure(inp, recs)
        written.append(images.save_image(fig.image, out / "reconstructions.png", record))
        for i, (c, r) in enumerate(zip(code.layers, recs, strict=True), 1):
            written.append(images.save_image(figures.maps_picture(figures.flat(c.maps)), out / f"layer{i}_maps.png",
                                             record))
            written.append(images.save_image(figures.signed_image(r, float(inp.abs().max())),
                                             out / f"layer{i}_reconstruction.png", record))
        tensors = {f"layer{i}.maps": c.maps.detach().cpu().contiguous() for i, c in enumerate(code.layers, 1)}
        meta = {"stylegram": json.dumps(record)}
        written.append(atomic_write_bytes(out / "maps.safetensors", save(tensors, metadata=meta)))
        stopped = any(asked)
        summary = {**record, "layers": [{"layer": i, "maps": list(c.maps.shape[1:]), **c.terms}
                                        for i, c in enumerate(code.layers, 1)],
                   "stopped": stopped, "files": [p.name for p in written] + ["summary.json"]}
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary


def write_filter_figure(model: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """``stylegram dn filters``: every layer's filters in pixel space, one labelled panel per layer."""
    out = images.check_output(output, [model])
    net = load_model(model)
    banks = [net.pixel_filters(i) for i in range(len(net.layers))]
    labels = ["layer 1"] + [f"layer {i + 1} (in pixel space)" for i in range(1, len(banks))]
    fig = figures.filters_figure([b.to(torch.float32) for b in banks], labels)
    record = new_record("deconvnets-filters", None, model=describe_file(model))
    return images.save_image(fig.image, out, record)
