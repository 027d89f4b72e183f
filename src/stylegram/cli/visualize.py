"""Command-line subcommands of :mod:`stylegram.visualize` (to come)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands to the ``stylegram`` parser (none yet)."""
