"""The shared device and memory helpers."""

from __future__ import annotations

import platform

import pytest
import torch

from stylegram.core.device import resolve_device, resolve_precision, return_freed_memory
from stylegram.core.errors import UsageError


def test_cpu_resolves_and_unknown_devices_are_refused_in_one_line() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("auto", torch.device("cpu")) in ("float32", "bfloat16")
    for bad, words in [("tpu", "unknown device"), ("cuda:99", "cuda")]:
        with pytest.raises(UsageError, match=words):
            resolve_device(bad)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_allocator_threshold_is_set_on_glibc() -> None:
    assert return_freed_memory() is True
    assert return_freed_memory() is True  # harmless to call again
