"""Memory sizes as people type and read them: ``2GB``, ``512MB``, ``1.5GiB`` (for ``--max-memory`` budgets)."""

from __future__ import annotations

import re

from stylegram.core.errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes from ``2GB``, ``512MB``, ``1.5GiB``, ``800k``, ``1.5e9`` … (decimal SI units, binary ``*iB`` units)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise UsageError(f"expected a memory size such as 2GB, 512MB or 1.5GiB, got {text!r}")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise UsageError(f"a memory size must be > 0, got {text!r}")
    return value


def format_size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
