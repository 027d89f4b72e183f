"""Stylising video files frame by frame with a feed-forward model (PyAV: FFmpeg's decoders and encoders).

The output keeps the input's frame count, frame rate and size (rounded down to even sides, which 4:2:0 video
needs); its video is H.264 (libx264) where the PyAV build has it, else MPEG-4 part 2. An audio stream, when present,
is copied packet for packet, without re-encoding. The file is written beside the target under a temporary name and
renamed into place only when complete, so a failed or interrupted run never leaves a half-written video.

Frames are timed at a constant rate (frame i at i / rate): a variable-frame-rate input comes out at its average
rate with the same frames.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stylegram.core.errors import StylegramError
from stylegram.core.resize import longest_side_shape

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})


class VideoError(StylegramError):
    """A video that cannot be read or written, with a one-line message naming the file."""


@dataclass(frozen=True)
class VideoResult:
    frames: int
    rate: Fraction
    size: tuple[int, int]  # (width, height) of the output
    codec: str
    audio: bool  # whether an audio stream was copied


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def video_codec() -> str:
    """The encoder used: H.264 when this PyAV build has libx264, else MPEG-4 part 2 (always built in)."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def stylize_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    stylize: Callable[[Tensor], Tensor],
    *,
    size: int | None = None,
    batch: int = 4,
    on_frame: Callable[[int, int], None] | None = None,
    scale: int = 1,
) -> VideoResult:
    """Decode ``src``, pass its frames through ``stylize`` ((B, 3, H, W) → same, RGB in [0, 1]) in batches of
    ``batch``, and encode them to ``dst``. ``size`` scales frames so the longer side has that many pixels.
    ``on_frame(done, total)`` reports progress (total is the container's estimate, 0 if unknown). ``scale``: the
    output frames are that many times larger than the input's (a super-resolution model).
    """
    import av

    source, target = os.fspath(src), Path(dst)
    if target.suffix.lower() not in VIDEO_EXTENSIONS:
        raise VideoError(f"cannot write video '{target}': use one of {', '.join(sorted(VIDEO_EXTENSIONS))}")
    try:
        inp = av.open(source)
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"cannot read video '{source}': {_reason(e)}") from None
    with inp, _temporary_beside(target) as temp:
        if not inp.streams.video:
            raise VideoError(f"cannot read video '{source}': it has no video stream")
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = Fraction(vin.average_rate or vin.guessed_rate or 25)
        width, height = _output_size(vin.codec_context.width, vin.codec_context.height, size)
        out = av.open(os.fspath(temp), "w", format=_container_format(target))
        with out:
            codec = video_codec()
            vout: Any = out.add_stream(codec, rate=rate)
            vout.width, vout.height, vout.pix_fmt = width * scale, height * scale, "yuv420p"
            vout.time_base = Fraction(1) / rate
            aout: Any = out.add_stream_from_template(ain) if ain is not None else None
            writer = _FrameWriter(out, vout, stylize, batch)
            total = vin.frames or 0
            try:
                streams = [s for s in (vin, ain) if s is not None]
                for packet in inp.demux(streams):
                    if packet.stream is ain:
                        if packet.dts is not None:  # the demuxer's final empty packet carries no data
                            packet.stream = aout
                            out.mux(packet)
                        continue
                    for frame in packet.decode():
                        writer.add(_frame_tensor(frame, width, height))
                        if on_frame:
                            on_frame(writer.count, total)
                writer.finish()
            except av.FFmpegError as e:
                raise VideoError(f"cannot read video '{source}': {_reason(e)}") from None
        if writer.count == 0:
            raise VideoError(f"cannot read video '{source}': no frames could be decoded")
        os.replace(temp, target)
    return VideoResult(writer.count, rate, (width * scale, height * scale), codec, ain is not None)


class _FrameWriter:
    """Collects frames into batches, stylises each batch and encodes its frames at pts 0, 1, 2, …"""

    def __init__(self, out: Any, stream: Any, stylize: Callable[[Tensor], Tensor], batch: int) -> None:
        self.out, self.stream, self.stylize, self.batch = out, stream, stylize, max(1, batch)
        self.pending: list[Tensor] = []
        self.count = 0  # frames received

    def add(self, frame: Tensor) -> None:
        self.pending.append(frame)
        self.count += 1
        if len(self.pending) >= self.batch:
            self._flush()

    def finish(self) -> None:
        self._flush()
        for packet in self.stream.encode(None):  # drain the encoder's delayed frames
            self.out.mux(packet)

    def _flush(self) -> None:
        import av

        if not self.pending:
            return
        first = self.count - len(self.pending)
        y = self.stylize(torch.cat(self.pending))  # (B, 3, H, W) in [0, 1]
        self.pending = []
        pixels = y.detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for i, rgb in enumerate(pixels):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = first + i
            for packet in self.stream.encode(frame):
                self.out.mux(packet)


def _frame_tensor(frame: Any, width: int, height: int) -> Tensor:
    # reformat scales (if --size asked for it) and converts to packed RGB in one libswscale call.
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)  # (H, W, 3) uint8
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div(255)


def _output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    if size:
        height, width = longest_side_shape(height, width, size, minimum=2)
    # 4:2:0 chroma subsampling needs even sides: drop at most one pixel from each.
    return max(2, width - width % 2), max(2, height - height % 2)


def _container_format(target: Path) -> str:
    return {".mkv": "matroska", ".m4v": "mp4", ".webm": "webm", ".avi": "avi", ".mov": "mov"}.get(
        target.suffix.lower(), "mp4")


@contextlib.contextmanager
def _temporary_beside(target: Path) -> Iterator[Path]:
    """A temporary path in the target's folder (so the final rename is atomic), removed unless renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name[:200]}.{secrets.token_hex(6)}.tmp{target.suffix}")
    try:
        yield temp
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text
