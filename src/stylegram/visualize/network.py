"""Which network a visualisation looks into: a VGG from a weights source or file, or a trained ZFNet file."""

from __future__ import annotations

import os
from typing import Any

import torch

from stylegram.core.device import resolve_device
from stylegram.core.errors import UsageError
from stylegram.core.record import describe_file
from stylegram.visualize.layers import Network
from stylegram.weights import load_vgg


def load_network(model: str | None = None, *, weights: str | os.PathLike[str] | None = None,
                 zfnet: str | os.PathLike[str] | None = None, pooling: str = "max",
                 device: str | torch.device | None = None) -> tuple[Network, dict[str, Any]]:
    """The network and the record of where it came from.

    ``zfnet`` names a file written by ``stylegram zfnet train``; otherwise a VGG is loaded from ``model`` (a
    weights source, default ``vgg16-caffe``) or ``weights`` (a file), with ``pooling`` (``max``, as trained,
    unless asked otherwise), and with its classifier when the weights have one.
    """
    dev = resolve_device(device)
    if pooling not in ("max", "avg"):
        raise UsageError(f"pooling must be max or avg, got {pooling!r}")
    if zfnet is not None:
        if model is not None or weights is not None:
            raise UsageError("give either a ZFNet file or VGG weights, not both")
        if pooling != "max":
            raise UsageError("ZFNet pools by max only")
        from stylegram.visualize.zfnet_files import load_zfnet

        net, info = load_zfnet(zfnet, str(dev))
        return net, {"network": "zfnet", **describe_file(zfnet), "epoch": info.epoch,
                     "classes": list(info.classes)}
    vgg, vinfo = load_vgg(model, path=weights, pooling=pooling, classifier=None, device=dev)  # type: ignore[arg-type]
    return vgg, {"network": vinfo.arch, "weights": vinfo.source, "sha256": vinfo.sha256, "pooling": pooling,
                 "classifier": vinfo.has_classifier}


def class_names(net: Network, record: dict[str, Any]) -> list[str] | None:
    """Names of the classifier's outputs: a ZFNet's own, or ImageNet's for a 1000-way VGG."""
    if "classes" in record:
        return list(record["classes"])
    if getattr(net, "classifier", None) is not None:
        from stylegram.nets.imagenet import class_names as imagenet

        return list(imagenet())
    return None
