"""Where the arithmetic runs, and in what precision: one resolve for every use case.

:func:`resolve_device` turns what a user typed (``None``, ``"cpu"``, ``"cuda:1"``) into a ``torch.device`` and
refuses, with a one-line :class:`UsageError`, a device that does not exist here, before any weights are loaded.
``None`` means the best device present: this process's GPU under ``torchrun`` (``LOCAL_RANK``), else the first
GPU, else the CPU. :func:`resolve_precision` turns ``"auto"`` into ``"bfloat16"`` where the device computes it
in hardware and ``"float32"`` elsewhere.
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import torch

from .errors import UsageError

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on; raises UsageError for a name torch does not know or a device this machine lacks."""
    if device is None or device == "":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"unknown device {str(device)!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {str(device)!r} asked for, but this machine has no CUDA GPU; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {str(device)!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type not in ("cpu", "mps"):
        raise UsageError(f"device type {dev.type!r} is not supported: use cpu or cuda")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device 'mps' asked for, but this machine has no Metal GPU")
    return dev


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (AVX512-BF16 or AMX CPUs; Ampere or newer GPUs)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence looked up defensively
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device) -> Literal["float32", "bfloat16"]:
    """``"float32"`` or ``"bfloat16"``: ``"auto"`` is bfloat16 where ``device`` computes it in hardware.

    Raises UsageError for anything but auto, float32 or bfloat16.
    """
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    if precision == "float32":
        return "float32"
    if precision == "bfloat16":
        return "bfloat16"
    raise UsageError(f"precision must be auto, float32 or bfloat16, got {precision!r}")


MMAP_THRESHOLD = 128 * 1024  # bytes


def return_freed_memory() -> bool:
    """Have the C allocator give freed large blocks back to the system at once (glibc only; False elsewhere).

    glibc serves a block above its mmap threshold from fresh pages and unmaps it when freed, but raises that
    threshold to each freed block's size (up to 32 MiB), after which blocks of a tile's size come from the heap
    and stay resident once freed: measured, a tiled super-resolution run sized to a budget then peaked about
    20 % over it. A fixed threshold of 128 KiB keeps the peak at what is alive. Called by the use cases that
    promise a memory budget (``--max-memory``); process-wide, and harmless to call again.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        return False
    if mallopt is None:
        return False
    return bool(mallopt(-3, MMAP_THRESHOLD))  # M_MMAP_THRESHOLD
