"""Command-line subcommands for feed-forward style transfer (Johnson et al.): train, apply, export.

Each subcommand sets ``func`` (taking the parsed namespace, returning an exit code); errors the user can fix
are raised as :class:`stylegram.cli.UsageError`, ImageError or WeightsError and become exit code 2.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the ``stylegram`` parser."""
