"""The use cases behind ``stylegram visualize``: each job checks everything in its constructor (output path,
inputs, network, layer, channel, window), before any long work; :meth:`run` does the work and writes the
figure atomically, with the record of how it was made embedded in it."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stylegram.core import images
from stylegram.core.atomic import atomic_write_bytes, check_writable
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep
from stylegram.core.record import describe_file, new_record
from stylegram.visualize import figures
from stylegram.visualize.evolution import Evolution, evolution
from stylegram.visualize.layers import Network, channels_of, check_fits, device_of, upto
from stylegram.visualize.network import class_names
from stylegram.visualize.occlusion import OcclusionResult, occlusion, positions
from stylegram.visualize.options import EvolutionOptions, OcclusionOptions, ProjectOptions, TopOptions
from stylegram.visualize.project import Projection, project
from stylegram.visualize.top import ImageFolder, TopResult, top_activations
from stylegram.visualize.zfnet_files import load_zfnet


def load_input(path: str | os.PathLike[str], size: int) -> Tensor:
    """An image file as (1, 3, H, W) in [0, 1], its longest side scaled to ``size`` (0: as it is)."""
    img = images.load_image(path)
    return images.to_tensor(images.resize_longest(img, size) if size else img)


def _check_channel(net: Network, layer: str, channel: int | None) -> None:
    if channel is not None and channel >= (count := channels_of(net, layer)):
        raise UsageError(f"channel {channel} is out of range: {layer} has {count} maps (0 to {count - 1})")


class ProjectJob:
    """One activation of IMAGE projected to pixel space; the figure, and optionally the raw array (.npy)."""

    def __init__(self, net: Network, network: dict[str, Any], image: str | os.PathLike[str], options: ProjectOptions,
                 output: str | os.PathLike[str], raw: str | os.PathLike[str] | None = None) -> None:
        self.output = images.check_output(output, [image])
        self.raw = None if raw is None else check_writable(raw, [image, output], "raw projection")
        if self.raw is not None and self.raw.suffix != ".npy":
            raise UsageError(f"the raw projection is written as NumPy .npy, not '{self.raw.suffix}'")
        self.net, self.options = net, options
        self.image = load_input(image, options.size)
        path = upto(net, options.layer)
        check_fits(path, *self.image.shape[-2:])
        _check_channel(net, options.layer, options.channel)
        self.record = new_record("visualize-project", device_of(net), options=options.to_dict(), network=network,
                                 inputs={"image": describe_file(image)})

    def run(self) -> Projection:
        o = self.options
        position = None if o.position is None else (o.position[0], o.position[1])
        proj = project(self.net, self.image, o.layer, o.channel, o.rule, position)
        self.record.update(channel=proj.channel, position=list(proj.position), activation=proj.activation,
                           box=list(proj.box), pooling=proj.pooling)
        if self.raw is not None:
            buffer = io.BytesIO()
            np.save(buffer, proj.image[0].numpy().astype(np.float32))  # (3, H, W), RGB
            atomic_write_bytes(self.raw, buffer.getvalue())
        images.save_image(figures.projection_figure(self.image, proj).image, self.output, self.record)
        return proj


class TopJob:
    """The k strongest activations of chosen maps over FOLDER, as a Fig. 2-style figure."""

    def __init__(self, net: Network, network: dict[str, Any], folder: str | os.PathLike[str], options: TopOptions,
                 output: str | os.PathLike[str]) -> None:
        self.output = images.check_output(output, [])
        self.net, self.options = net, options
        for layer in options.layers:
            upto(net, layer)
        self.channels = self._channels()
        self.images = ImageFolder(folder, options.size or None)
        self.record = new_record("visualize-top", device_of(net), options=options.to_dict(), network=network,
                                 inputs={"folder": Path(folder).name, "images": len(self.images)},
                                 channels=self.channels)

    def _channels(self) -> dict[str, list[int]]:
        o, out = self.options, {}
        for layer in o.layers:
            count = channels_of(self.net, layer)
            if o.channels is not None:
                bad = [c for c in o.channels if c >= count]
                if bad:
                    raise UsageError(f"channel {bad[0]} is out of range: {layer} has {count} maps (0 to {count - 1})")
                out[layer] = list(o.channels)
            else:
                out[layer] = sorted(random.Random(f"{o.seed}:{layer}").sample(range(count), min(o.random, count)))
        return out

    def run(self, on_step: OnStep | None = None) -> TopResult:
        o = self.options
        result = top_activations(self.net, self.images, o.layers, o.k, self.channels, rule=o.rule,
                                 batch_size=o.batch_size, on_step=on_step)
        self.record.update(seconds=round(result.seconds, 2), seen=result.images, skipped=result.skipped,
                           stopped=result.stopped, hits={layer: [[h.name for h in hits] for hits in top.hits]
                                                         for layer, top in result.layers.items()})
        images.save_image(figures.top_figure(result).image, self.output, self.record)
        return result


class OcclusionJob:
    """Occlusion sensitivity of IMAGE (Fig. 7): panels (b) and (c), and (d), (e) with a classifier."""

    def __init__(self, net: Network, network: dict[str, Any], image: str | os.PathLike[str],
                 options: OcclusionOptions, output: str | os.PathLike[str]) -> None:
        self.output = images.check_output(output, [image])
        self.net, self.network, self.options = net, network, options
        self.image = load_input(image, options.size)
        height, width = self.image.shape[-2:]
        check_fits(upto(net, options.layer), height, width)
        _check_channel(net, options.layer, options.channel)
        if options.window > min(height, width):
            raise UsageError(f"the {options.window}-pixel window is larger than the {width}×{height} image"
                             + (f" (scaled to --size {options.size})" if options.size else ""))
        if options.target is not None and net.classifier is None:
            raise UsageError("--target needs a network with a classifier (torchvision VGG weights or a ZFNet file)")
        self.record = new_record("visualize-occlusion", device_of(net), options=options.to_dict(),
                                 network=network, inputs={"image": describe_file(image)})

    @property
    def positions(self) -> int:
        h, w = self.image.shape[-2:]
        o = self.options
        return len(positions(h, o.window, o.stride)) * len(positions(w, o.window, o.stride))

    def run(self, on_step: OnStep | None = None) -> OcclusionResult:
        o = self.options
        result = occlusion(self.net, self.image, o.layer, o.window, o.stride, o.fill, channel=o.channel,
                           target=o.target, batch_size=o.batch_size, rule=o.rule, on_step=on_step)
        names = class_names(self.net, self.network)
        self.record.update(channel=result.channel, target=result.target, seconds=round(result.seconds, 2),
                           stopped=result.stopped,
                           target_name=None if result.target is None or names is None else names[result.target])
        images.save_image(figures.occlusion_figure(self.image, result, names).image, self.output, self.record)
        return result


class EvolutionJob:
    """The strongest projection of a few maps over IMAGES at each ZFNet checkpoint (Fig. 4)."""

    def __init__(self, checkpoints: list[str], folder: str | os.PathLike[str], options: EvolutionOptions,
                 output: str | os.PathLike[str], device: str | torch.device | None = None) -> None:
        self.output = images.check_output(output, checkpoints)
        if not checkpoints:
            raise UsageError("give at least one checkpoint")
        net, _ = load_zfnet(checkpoints[0])  # the first one stands for all: same configuration
        upto(net, options.layer)
        for c in options.channels:
            _check_channel(net, options.layer, c)
        self.checkpoints, self.options, self.device = checkpoints, options, device
        self.images = ImageFolder(folder, options.size or None)
        self.record = new_record("visualize-evolution", device, options=options.to_dict(),
                                 checkpoints=[describe_file(c) for c in checkpoints],
                                 inputs={"folder": Path(folder).name, "images": len(self.images)})

    def run(self, on_step: OnStep | None = None) -> Evolution:
        o = self.options
        evo = evolution(self.checkpoints, self.images, o.layer, o.channels, rule=o.rule,
                        device=None if self.device is None else str(self.device), on_step=on_step)
        self.record.update(epochs=list(evo.epochs))
        images.save_image(figures.evolution_figure(evo).image, self.output, self.record)
        return evo
