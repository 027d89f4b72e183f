"""``stylegram visualize project|top|occlusion|evolution`` and ``stylegram zfnet train|shapes``: Zeiler &
Fergus's figures through the use cases of :mod:`stylegram.visualize.jobs`."""

from __future__ import annotations

import argparse
from typing import Any

from stylegram.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Progress,
    add_option_flags,
    options_from,
    run_with_progress,
    say,
)
from stylegram.visualize.options import EvolutionOptions, OcclusionOptions, ProjectOptions, TopOptions
from stylegram.visualize.train_zfnet import ZFTrainOptions


def register(sub: argparse._SubParsersAction[Any]) -> None:
    v = sub.add_parser("visualize", help="what the features respond to (Zeiler & Fergus 2014)",
                       description="Projections of single activations to pixel space, the strongest activations "
                       "over a folder, occlusion sensitivity, and feature evolution during ZFNet training.")
    kinds = v.add_subparsers(dest="kind", required=True, metavar="KIND")
    p = kinds.add_parser("project", help="project one activation back to pixel space",
                         description="Run IMAGE up to --layer recording the max-pool switches, keep one activation "
                         "and take it back down with the chosen ReLU rule.")
    p.add_argument("image")
    p.add_argument("--raw", metavar="X.npy", help="also write the projection as a float32 array (3, H, W), RGB")
    add_option_flags(p, ProjectOptions)
    p.set_defaults(func=cmd_project)
    t = kinds.add_parser("top", help="the k strongest activations of chosen maps over a folder (Fig. 2)")
    t.add_argument("folder", help="folder of images (searched recursively)")
    add_option_flags(t, TopOptions)
    t.set_defaults(func=cmd_top)
    o = kinds.add_parser("occlusion", help="occlusion sensitivity maps of one image (Fig. 7)",
                         description="Slide a grey square over IMAGE; panels (d) and (e) need a classifier "
                         "(--model vgg16 or vgg19 with torchvision's weights, or --zfnet FILE).")
    o.add_argument("image")
    add_option_flags(o, OcclusionOptions)
    o.set_defaults(func=cmd_occlusion)
    e = kinds.add_parser("evolution", help="the strongest projections at each ZFNet checkpoint (Fig. 4)")
    e.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="files written by stylegram zfnet train")
    e.add_argument("--images", required=True, metavar="FOLDER", help="images to look through")
    add_option_flags(e, EvolutionOptions)
    e.set_defaults(func=cmd_evolution)
    for q in (p, t, o, e):
        q.add_argument("-o", "--output", required=True, metavar="FIGURE.png", help="the labelled figure")
        q.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")
    for q in (p, t, o):
        _network_flags(q)
    _register_zfnet(sub)


def _network_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="VGG weights source (default: vgg16-caffe, offline, no "
                   "classifier; vgg16 and vgg19 are torchvision's, with classifier)")
    p.add_argument("--weights", default=None, metavar="FILE", help="a VGG weights file instead of --model")
    p.add_argument("--zfnet", default=None, metavar="FILE", help="a ZFNet file from stylegram zfnet train")
    p.add_argument("--pooling", choices=("max", "avg"), default="max",
                   help="max, as the network was trained (default), or avg: there are no switches then, and "
                   "each value goes back spread evenly over its pooling window")


def _register_zfnet(sub: argparse._SubParsersAction[Any]) -> None:
    z = sub.add_parser("zfnet", help="train ZFNet (Zeiler & Fergus 2014) on a folder of classes")
    kinds = z.add_subparsers(dest="kind", required=True, metavar="KIND")
    t = kinds.add_parser("train", help="train on a folder with one subfolder of images per class",
                         description="SGD with momentum, dropout, random crops and flips, and the paper's RMS "
                         "filter renormalisation; writes DIR/epoch_NNN.safetensors checkpoints.")
    t.add_argument("--data", required=True, metavar="FOLDER", help="one subfolder of images per class")
    t.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the checkpoints")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", action="store_true", help="go on from DIR/train_state.ckpt (written after every "
                   "epoch) with the same options and data; --epochs may be raised to train longer")
    add_option_flags(t, ZFTrainOptions)
    t.set_defaults(func=cmd_train)
    s = kinds.add_parser("shapes", help="draw a small labelled data set (discs, squares, triangles, stripes)")
    s.add_argument("folder", help="where to write FOLDER/<class>/*.png")
    s.add_argument("--per-class", type=int, default=100, help="images per class (default: 100)")
    s.add_argument("--size", type=int, default=80, help="side of each image in pixels (default: 80)")
    s.add_argument("--seed", type=int, default=0, help="default: 0")
    s.set_defaults(func=cmd_shapes)


def _network(ns: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from stylegram.visualize.network import load_network

    return load_network(ns.model, weights=ns.weights, zfnet=ns.zfnet, pooling=ns.pooling, device=ns.device)


def _progress_run(ns: argparse.Namespace, total: int, unit: str, run: Any) -> Any:
    # Events count per stage (one stage per checkpoint in evolution).
    return run_with_progress(run, Progress(total, unit=unit, quiet=ns.quiet), by_iteration=True)


def cmd_project(ns: argparse.Namespace) -> int:
    from stylegram.visualize.jobs import ProjectJob

    options = options_from(ns, ProjectOptions())
    net, network = _network(ns)
    job = ProjectJob(net, network, ns.image, options, ns.output, ns.raw)
    proj = job.run()
    say(ns, f"wrote {job.output}: {proj.layer} map {proj.channel} at {proj.position[0]},{proj.position[1]} "
            f"(activation {proj.activation:.4g})", force=True)
    return EXIT_OK


def cmd_top(ns: argparse.Namespace) -> int:
    from stylegram.visualize.jobs import TopJob

    options = options_from(ns, TopOptions())
    net, network = _network(ns)
    job = TopJob(net, network, ns.folder, options, ns.output)
    result = _progress_run(ns, len(job.images), "img", job.run)
    skipped = f", {result.skipped} unreadable skipped" if result.skipped else ""
    say(ns, f"wrote {job.output}: {result.images} images in {result.seconds:.1f} s{skipped}", force=True)
    return EXIT_INTERRUPTED if result.stopped else EXIT_OK


def cmd_occlusion(ns: argparse.Namespace) -> int:
    from stylegram.visualize.jobs import OcclusionJob

    options = options_from(ns, OcclusionOptions())
    net, network = _network(ns)
    job = OcclusionJob(net, network, ns.image, options, ns.output)
    if net.classifier is None:
        say(ns, "these weights have no classifier: panels (d) and (e) are left out (use --model vgg16 or --zfnet)")
    result = _progress_run(ns, job.positions, "pos", job.run)
    say(ns, f"wrote {job.output}: {result.layer} map {result.channel}, {result.activation.numel()} positions in "
            f"{result.seconds:.1f} s", force=True)
    return EXIT_INTERRUPTED if result.stopped else EXIT_OK


def cmd_evolution(ns: argparse.Namespace) -> int:
    from stylegram.core.device import resolve_device
    from stylegram.visualize.jobs import EvolutionJob

    options = options_from(ns, EvolutionOptions())
    job = EvolutionJob(ns.checkpoints, ns.images, options, ns.output, resolve_device(ns.device))
    evo = _progress_run(ns, len(job.images) * len(ns.checkpoints), "img", job.run)
    say(ns, f"wrote {job.output}: {len(evo.channels)} maps × {len(evo.epochs)} epochs", force=True)
    return EXIT_OK


def cmd_train(ns: argparse.Namespace) -> int:
    from stylegram.core.device import resolve_device
    from stylegram.visualize.train_zfnet import ZFTrainJob

    options = options_from(ns, ZFTrainOptions())
    job = ZFTrainJob(ns.data, ns.output, options, resolve_device(ns.device), resume=ns.resume)
    say(ns, f"{len(job.data.items)} images in {len(job.data.classes)} classes: {', '.join(job.data.classes)}"
        + (f"; resuming after epoch {job.first_epoch - 1}" if ns.resume else ""))
    result = _progress_run(ns, job.total, "step", job.run)
    acc = f", training accuracy {result.accuracy[-1]:.0%}" if result.accuracy else ""
    say(ns, f"wrote {len(result.checkpoints)} checkpoints to {job.output}{acc}", force=True)
    return EXIT_INTERRUPTED if result.stopped else EXIT_OK


def cmd_shapes(ns: argparse.Namespace) -> int:
    from stylegram.visualize.shapes import CLASSES, write_shapes

    root = write_shapes(ns.folder, ns.per_class, ns.size, ns.seed)
    say(ns, f"wrote {ns.per_class * len(CLASSES)} images to {root}", force=True)
    return EXIT_OK
