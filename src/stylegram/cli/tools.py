"""``stylegram classify``, ``stylegram weights list|verify`` and ``stylegram info``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stylegram.cli.common import EXIT_OK, EXIT_UNEXPECTED, UsageError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    c = sub.add_parser("classify", help="top-5 ImageNet classes of an image (needs weights with a classifier)")
    c.add_argument("image")
    c.add_argument("--model", default="vgg16", help="weights id with a classifier: vgg16 or vgg19 (default: vgg16)")
    c.add_argument("--weights", help="a weights file (.pth or .safetensors) to use")
    c.add_argument("--top", type=int, default=5, help="how many classes to show (default: 5)")
    c.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    c.set_defaults(func=cmd_classify)

    w = sub.add_parser("weights", help="list or verify the VGG weights")
    w.add_argument("action", choices=["list", "verify"])
    w.set_defaults(func=cmd_weights)

    i = sub.add_parser("info", help="print how an output image was made")
    i.add_argument("image")
    i.set_defaults(func=cmd_info)


def cmd_classify(ns: argparse.Namespace) -> int:
    from stylegram.classify import classify

    for name, p in classify(ns.image, model=ns.model, weights=ns.weights, top=ns.top, device=ns.device):
        print(f"{p * 100:6.2f}%  {name}")
    return EXIT_OK


def cmd_weights(ns: argparse.Namespace) -> int:
    from stylegram.weights import list_sources, verify

    if ns.action == "list":
        for s in list_sources():
            state = "available" if s.available else "missing"
            size = f"{s.size / 1e6:8.1f} MB" if s.size else "        -  "
            print(f"{s.id:22s} {state:9s} {size}  {s.sha256 or '-':64s}  {s.where}")
        return EXIT_OK
    corrupt = 0
    for r in verify():
        where = f"{r.path}: " if r.path else ""
        print(f"{r.id:22s} {r.status:8s} {where}{r.message}")
        corrupt += not r.ok
    # Exit 1 only for damaged files: a missing source is fetched or built on first use, a stale one rebuilt.
    return EXIT_UNEXPECTED if corrupt else EXIT_OK


def cmd_info(ns: argparse.Namespace) -> int:
    from stylegram.core import images

    meta = images.read_metadata(ns.image)
    if meta is None:
        raise UsageError(f"'{ns.image}' carries no stylegram metadata")
    print(json.dumps(meta, indent=2, sort_keys=True))
    return EXIT_OK
