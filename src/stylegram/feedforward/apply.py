"""Applying a trained feed-forward model to images, folders of images and videos: the use case behind
``stylegram apply``, callable from any front end.

    job = ApplyJob("mosaic.safetensors", ["photos/", "clip.mp4"], "styled/", ApplyOptions(size=512))
    result = job.run(on_step=print)

The constructor does every check before the long work: the options, the device, the model file, every input
(found, readable header, large enough for the network), every output (a supported extension, a place that can
be written, never an input). :meth:`ApplyJob.run` then writes each output atomically with the record of how it
was made (the model's checksum included). In a folder, an image that cannot be used is skipped and named in
:attr:`ApplyResult.skipped`; a single input that cannot be used is a :class:`UsageError` up front.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from stylegram.core import images
from stylegram.core.atomic import atomic_write_text, check_writable
from stylegram.core.device import resolve_device, return_freed_memory
from stylegram.core.errors import UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.images import ImageError, longest_side_shape
from stylegram.core.options import Options, option
from stylegram.core.record import describe_file, new_record
from stylegram.core.units import parse_size
from stylegram.core.video import VIDEO_EXTENSIONS, VideoError, VideoResult, is_video, stylize_video
from stylegram.feedforward import tiles
from stylegram.feedforward.data import EXTENSIONS
from stylegram.feedforward.model import FastStyleModel, ModelInfo, load_model
from stylegram.feedforward.tiles import FLOAT

MAX_SIZE = 16384
# The video encoders this build uses (H.264, else MPEG-4 part 2) cannot go into a WebM container, which takes
# only VP8/VP9/AV1 with Opus/Vorbis audio; refused up front rather than failing in the encoder.
UNWRITABLE_VIDEO = frozenset({".webm"})


@dataclass(frozen=True)
class ApplyOptions(Options):
    """How to apply a model: input scaling, colours, batching and the inference engine."""

    size: int | None = option(None, "scale inputs so the longer side has this many pixels (default: as they are)",
                              min=1, max=MAX_SIZE)
    original_colors: bool = option(False, "style models: keep each input's colours (luminance only)")
    match_histogram: bool = option(True, "super-resolution models: match each output's colour histograms to its "
                                         "input's (the paper's post-processing)")
    max_memory: str | None = option(None, "super-resolution models: memory budget for one image (2GB, 512MB, "
                                          "1.5GiB …); a larger input runs in tiles (default: no limit)")
    batch_size: int = option(4, "images or frames per forward pass", min=1, max=1024)
    backend: Literal["torch", "onnxruntime"] = option("torch", "inference engine")
    precision: Literal["auto", "float32", "bfloat16"] = option(
        "auto", "arithmetic of the torch backend: float32, bfloat16 (faster where the hardware has it; output within "
        "a fraction of a grey level of float32 on average), or auto: bfloat16 where the hardware has it, else float32")

    def problems(self) -> Iterator[str]:
        if self.backend == "onnxruntime" and self.precision == "bfloat16":
            yield "precision bfloat16 needs the torch backend (the ONNX model runs in float32)"
        if self.max_memory is not None:
            try:
                parse_size(self.max_memory)
            except UsageError as e:
                yield f"max-memory: {e}"


@dataclass(frozen=True)
class Item:
    """One input and where its output goes."""

    source: Path
    target: Path

    @property
    def video(self) -> bool:
        return is_video(self.source)


@dataclass
class ApplyResult:
    images: int = 0  # images written
    videos: list[tuple[Path, VideoResult]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, why) of inputs left out
    stopped: bool = False  # on_step asked to stop; the output being made then was not written
    elapsed: float = 0.0


class _Stop(Exception):
    """Raised inside a video's frame callback to abandon it (its temporary file is removed)."""


class ApplyJob:
    """A checked run of a model over images, folders and videos (see the module docstring).

    Afterwards :attr:`items` lists (input, output) pairs in the order they run (images first, then videos),
    :attr:`skipped` the inputs already left out, :attr:`single` whether ``output`` names one file, and
    :attr:`record` the record every output carries. Events: one per image (``stage`` 0, ``total`` images) and
    one per video frame (``stage`` k for the k-th video); ``on_step`` returning True stops after that image or
    abandons that video.
    """

    def __init__(self, model: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
                 output: str | os.PathLike[str], options: ApplyOptions | None = None, *,
                 device: str | torch.device | None = None) -> None:
        self.options = o = options if options is not None else ApplyOptions()
        self.device = resolve_device(device) if o.backend == "torch" else torch.device("cpu")
        if o.backend == "onnxruntime" and device is not None and resolve_device(device).type != "cpu":
            raise UsageError("the onnxruntime backend runs on the CPU: use --backend torch for another device")
        items, self.single = plan(inputs, Path(output))
        self._forward, self.info, precision, self._net = _load(model, o, self.device)
        if o.original_colors and self.info.task != "style":
            raise UsageError("original-colors is for style models; this is a super-resolution model")
        self.budget = parse_size(o.max_memory) if o.max_memory is not None else None
        if self.budget is not None:
            return_freed_memory()
        self.skipped: list[tuple[str, str]] = []
        self.items = [i for i in items if not i.video] + [i for i in items if i.video]
        self.items = [i for i in self.items if self._usable(i)]
        if not self.items:
            raise UsageError(f"none of the inputs can be used: {self.skipped[0][0]}: {self.skipped[0][1]}"
                             if self.skipped else "no inputs")
        summary = {k: v for k, v in json.loads(self.info.to_json()).items() if k != "extra"}
        self.record = new_record(_method(self.info), self.device, model=describe_file(model), model_info=summary,
                                 backend=o.backend, precision=precision, options=o.to_dict(),
                                 original_colors=o.original_colors)

    # ------------------------------------------------------------------------------------------ checks

    def _usable(self, item: Item) -> bool:
        """Whether ``item`` can run: an output that cannot be written is always an error; an input that cannot be
        used is skipped, its reason kept in :attr:`skipped` (a single input raises it instead)."""
        if item.video:
            check_video_output(item.target, item.source)
        else:
            images.check_output(item.target, [item.source])
        try:
            self._check_size(_video_size(item.source) if item.video else _image_size(item.source), item)
        except (ImageError, VideoError, UsageError) as e:
            if self.single:
                raise
            self.skipped.append((os.fspath(item.source), str(e)))
            return False
        return True

    def _check_size(self, size: tuple[int, int], item: Item) -> None:
        """Refuse an input that, after ``--size``, is smaller than the network takes."""
        w, h = size
        if self.options.size:
            h, w = longest_side_shape(h, w, self.options.size, minimum=2 if item.video else 1)
            if item.video:
                w, h = w - w % 2, h - h % 2  # 4:2:0 video keeps even sides
        least = self.info.arch.min_side
        if min(w, h) < least:
            scaled = f" after scaling to --size {self.options.size}" if self.options.size else ""
            raise UsageError(f"'{item.source}' is {w}×{h} pixels{scaled}; the network needs at least {least}×{least}")
        if self.budget is not None and self.info.task == "superres" and self.tile_core(h, w) is None:
            raise UsageError(f"'{item.source}' ({w}×{h}) needs more than --max-memory {self.options.max_memory} "
                             f"for its {w * self.info.scale}×{h * self.info.scale} output alone, even in tiles")

    def tile_core(self, h: int, w: int) -> int | None:
        """The tile core for an h × w super-resolution input within the budget (0: the whole image at once);
        None when even the smallest tiles do not fit.

        Held besides the tiles' activations (:func:`~stylegram.feedforward.tiles.peak_bytes`): the decoded
        input and its float tensor, and the output as :class:`~stylegram.feedforward.imaging.LevelCanvas` keeps
        it (3 bytes per output pixel, 6 with histogram matching); afterwards, with histogram matching, the bin
        index and the 8-bit output together (9), and while saving, the 8-bit output and the image's own copy
        (3 + 4: Pillow keeps RGB in 4 bytes).
        """
        if self.budget is None or self._net is None:
            return 0
        s, net = self.info.scale, self._net.net
        c = int(getattr(net.get_submodule("head.conv"), "out_channels"))  # noqa: B009  (a Conv2d's)
        pixels = h * w * s * s
        inp = (FLOAT * 3 + 4) * h * w
        held = (6 if self.options.match_histogram else 3) * pixels
        after = (9 if self.options.match_histogram else 7) * pixels  # the larger of the two moments after tiles
        if inp + after > self.budget:
            return None
        upsample = str(getattr(net, "upsample"))  # noqa: B009  (a super-resolution network's)
        if inp + held + tiles.peak_bytes(h, w, s, c, upsample) <= self.budget:
            return 0
        reach = int(getattr(net, "margin")())  # noqa: B009
        return tiles.largest_core(self.budget, s, c, reach, inp + held, h, w, upsample)

    # ------------------------------------------------------------------------------------------ running

    def run(self, on_step: OnStep | None = None) -> ApplyResult:
        """Apply the model to every input and write the outputs; see :class:`ApplyJob` for the events."""
        result = ApplyResult(skipped=list(self.skipped))
        t0 = time.perf_counter()
        stills = [i for i in self.items if not i.video]
        videos = [i for i in self.items if i.video]
        stages = 1 + len(videos)
        for group in self._groups(stills, result):
            outputs = self._run(torch.cat([x for _, x in group]))
            for k, (item, _) in enumerate(group):
                meta = {**self.record, "input": item.source.name}
                images.save_image(images.from_levels(outputs[k]), item.target, meta)
            del outputs
            result.images += len(group)
            event = StepEvent(result.images, len(stills), {}, time.perf_counter() - t0, 0, stages)
            if on_step is not None and on_step(event):
                result.stopped = True
                break
        for k, item in enumerate(videos if not result.stopped else [], start=1):
            done = self._video(item, k, stages, t0, on_step)
            if done is None:
                result.stopped = True
                break
            result.videos.append((item.target, done))
        result.elapsed = time.perf_counter() - t0
        return result

    def _run(self, x: Tensor) -> Tensor:
        """The model on a batch of one size → (B, H', W', 3) uint8; a super-resolution model (torch backend) in
        tiles when the budget asks for them, into an 8-bit canvas."""
        if self._net is None or self.info.task != "superres":
            return images.levels(self._forward(x)).permute(0, 2, 3, 1)
        core = self.tile_core(*x.shape[-2:])
        return self._net.stylize_levels(x, match_histogram=self.options.match_histogram, tile=core or 0)

    def _groups(self, items: list[Item], result: ApplyResult) -> Iterator[list[tuple[Item, Tensor]]]:
        """Consecutive images of one size, up to ``batch_size``, with their (1, 3, H, W) tensors."""
        group: list[tuple[Item, Tensor]] = []
        size = self.options.size
        # --max-memory is the budget of one image: super-resolution under a budget runs image by image.
        batch = 1 if self.budget is not None and self.info.task == "superres" else self.options.batch_size
        for item in items:
            try:
                img = images.load_image(item.source)
            except ImageError as e:  # a header that read fine, then pixels that did not
                if self.single:
                    raise
                result.skipped.append((os.fspath(item.source), str(e)))
                continue
            x = images.to_tensor(images.resize_longest(img, size) if size else img)
            if min(x.shape[-2:]) < self.info.arch.min_side:  # EXIF rotation cannot change this, but be safe
                result.skipped.append((os.fspath(item.source), "too small for the network"))
                continue
            if group and (x.shape != group[0][1].shape or len(group) >= batch):
                yield group
                group = []
            group.append((item, x))
        if group:
            yield group

    def _video(self, item: Item, stage: int, stages: int, t0: float, on_step: OnStep | None) -> VideoResult | None:
        """One video through the model, with its record in a sidecar; None when on_step asked to stop."""

        def frame(done: int, total: int) -> None:
            event = StepEvent(done, total, {}, time.perf_counter() - t0, stage, stages)
            if on_step is not None and on_step(event):
                raise _Stop

        try:
            scaled = {"scale": self.info.scale} if self.info.scale != 1 else {}
            result = stylize_video(item.source, item.target, self._forward, size=self.options.size,
                                   batch=self.options.batch_size, on_frame=frame, **scaled)
        except _Stop:
            return None
        meta = {**self.record, "input": item.source.name, "frames": result.frames, "audio": result.audio}
        atomic_write_text(item.target.with_name(item.target.name + ".json"), json.dumps(meta, indent=2) + "\n")
        return result


# ---------------------------------------------------------------------------------------------- planning


def plan(inputs: Sequence[str | os.PathLike[str]], out: Path) -> tuple[list[Item], bool]:
    """(input, output) pairs, and whether ``out`` names a single output file.

    One input file and an ``out`` with an extension (that is not a folder): ``out`` is that file. Otherwise
    ``out`` is a folder: a file goes to ``out/NAME``, a folder's images and videos to ``out/FOLDER/…``.
    """
    if not inputs:
        raise UsageError("give at least one input")
    for name in inputs:
        if not os.path.exists(name):
            raise UsageError(f"input not found: {os.fspath(name)}")
    first = Path(inputs[0])
    if len(inputs) == 1 and first.is_file() and out.suffix != "" and not out.is_dir():
        if is_video(first) != is_video(out):
            raise UsageError(f"'{first}' and '{out}' must both be videos or both be images")
        return [Item(first, out)], True
    if out.exists() and not out.is_dir():
        raise UsageError(f"with several inputs or a folder, OUT must be a folder; '{out}' is a file")
    items: list[Item] = []
    for name in inputs:
        root = Path(name)
        if root.is_dir():
            wanted = EXTENSIONS | VIDEO_EXTENSIONS
            for f in sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file()):
                items.append(Item(f, out / root.name / f.relative_to(root)))
        else:
            items.append(Item(root, out / root.name))
    if not items:
        raise UsageError(f"no images or videos found in {', '.join(os.fspath(i) for i in inputs)}")
    for item in items:  # e.g. `apply MODEL photos -o .` would write photos/x.jpg over itself
        if item.target.exists() and os.path.samefile(item.source, item.target):
            raise UsageError(f"refusing to overwrite the input '{item.source}': choose another OUT folder")
    return items, False


def check_video_output(target: Path, source: Path) -> None:
    """Refuse a video output that could not be written: unknown or unsupported container, unwritable place."""
    suffix = target.suffix.lower()
    if suffix not in VIDEO_EXTENSIONS or suffix in UNWRITABLE_VIDEO:
        writable = sorted(VIDEO_EXTENSIONS - UNWRITABLE_VIDEO)
        why = "its codecs (VP8/VP9) are not among this build's encoders" if suffix in UNWRITABLE_VIDEO else \
            "not a video container"
        raise UsageError(f"cannot write video '{target}': {suffix or 'no extension'} is not supported ({why}); "
                         f"use one of {', '.join(writable)}")
    check_writable(target, [source], "video")


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header alone; ImageError when Pillow cannot identify the file."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ImageError(f"cannot read image '{path}': not an image, or in a format Pillow cannot read") from None


def _video_size(path: Path) -> tuple[int, int]:
    """(width, height) of the first video stream; VideoError when there is none or the file is unreadable."""
    import av

    try:
        with av.open(os.fspath(path)) as c:
            if not c.streams.video:
                raise VideoError(f"cannot read video '{path}': it has no video stream")
            ctx = c.streams.video[0].codec_context
            return int(ctx.width), int(ctx.height)
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"cannot read video '{path}': {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None


def _load(model: str | os.PathLike[str], o: ApplyOptions, device: torch.device
          ) -> tuple[Callable[[Tensor], Tensor], ModelInfo, str, FastStyleModel | None]:
    """The inference function (B, 3, H, W) → (B, 3, s·H, s·W) of the chosen backend, the model's record, the
    precision in use, and the PyTorch model (None for onnxruntime)."""
    from stylegram.feedforward.imaging import match_histogram
    from stylegram.losses.color import keep_colors

    if o.backend == "onnxruntime":
        from stylegram.feedforward.export import OnnxStyleModel

        runtime = OnnxStyleModel.load(model)
        if runtime.info.task == "superres" and o.match_histogram:
            return (lambda x: match_histogram(runtime(x), x)), runtime.info, "float32", None
        if o.original_colors:
            return (lambda x: keep_colors(runtime(x), x)), runtime.info, "float32", None
        return runtime, runtime.info, "float32", None
    net = load_model(model, device=device, precision=o.precision)
    return (lambda x: net.stylize_tensor(x, original_colors=o.original_colors, match_histogram=o.match_histogram)
            ), net.info, net.precision, net


def _method(info: ModelInfo) -> str:
    return "johnson" if info.task == "style" else f"johnson-{info.task}"
