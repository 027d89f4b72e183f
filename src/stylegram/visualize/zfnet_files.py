"""ZFNet model files: the weights as safetensors, with the configuration, class names and training epoch in
its metadata, so that a checkpoint alone rebuilds the network. Written atomically."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylegram.core.atomic import atomic_write_bytes
from stylegram.core.errors import StylegramError
from stylegram.nets.zfnet import NORM, ConfigItem, Conv, Pool, ZFNet

FORMAT = "stylegram-zfnet-1"


class ZFNetFileError(StylegramError):
    """A ZFNet file that is missing, unreadable, or not a ZFNet written by stylegram."""


@dataclass(frozen=True)
class ZFNetInfo:
    classes: tuple[str, ...]
    epoch: int
    path: str
    record: dict[str, Any]  # how it was trained (options, data set)


def _config_json(config: tuple[ConfigItem, ...]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for item in config:
        if isinstance(item, Conv):
            out.append(["conv", item.out, item.kernel, item.stride, item.padding])
        elif isinstance(item, Pool):
            out.append(["pool", item.kernel, item.stride])
        else:
            out.append(["norm"])
    return out


def _config_from(items: list[list[Any]]) -> tuple[ConfigItem, ...]:
    out: list[ConfigItem] = []
    for item in items:
        kind, *args = item
        out.append(Conv(*map(int, args)) if kind == "conv" else Pool(*map(int, args)) if kind == "pool" else NORM)
    return tuple(out)


def save_zfnet(net: ZFNet, path: str | os.PathLike[str], classes: tuple[str, ...], epoch: int,
               record: dict[str, Any]) -> Path:
    from safetensors.torch import save

    meta = {"format": FORMAT, "config": json.dumps(_config_json(net.config)), "classes": json.dumps(list(classes)),
            "hidden": json.dumps(list(net.hidden)), "pooled": str(net.pooled), "dropout": str(net.dropout),
            "epoch": str(epoch), "record": json.dumps(record)}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return atomic_write_bytes(path, save(state, metadata=meta))


def load_zfnet(path: str | os.PathLike[str], device: str | None = None) -> tuple[ZFNet, ZFNetInfo]:
    """A frozen ZFNet (eval mode) and what its file says about it."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    file = Path(path)
    if not file.is_file():
        raise ZFNetFileError(f"ZFNet file not found: {os.fspath(path)}")
    try:
        data = file.read_bytes()
        state = load(data)
        meta = _metadata(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise ZFNetFileError(f"{file.name}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ZFNetFileError(f"{file.name}: not a ZFNet file written by stylegram zfnet train")
    classes = tuple(json.loads(meta["classes"]))
    net = ZFNet(_config_from(json.loads(meta["config"])), num_classes=len(classes),
                hidden=tuple(json.loads(meta["hidden"])), pooled=int(meta["pooled"]), dropout=float(meta["dropout"]))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ZFNetFileError(f"{file.name}: weights do not fit its configuration ({str(exc)[:120]})") from None
    net.freeze()
    if device is not None:
        net.to(device)
    return net, ZFNetInfo(classes, int(meta["epoch"]), str(file), json.loads(meta.get("record", "{}")))


def _metadata(data: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then the JSON header with "__metadata__".
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    meta = header.get("__metadata__", {})
    return {str(k): str(v) for k, v in meta.items()}
