"""The ``stylegram`` command: builds the parser from each command group's module and maps errors to exit codes.

Every :class:`~stylegram.core.errors.StylegramError` (bad usage or bad input) is one line on stderr and exit
code 2; anything else is a bug: one line naming it, exit 1, the traceback with ``STYLEGRAM_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from stylegram.cli import deconvnets, feedforward, figures, gatys, tools, visualize, web
from stylegram.cli.common import EXIT_INTERRUPTED, EXIT_UNEXPECTED, EXIT_USAGE, say
from stylegram.core.errors import StylegramError
from stylegram.core.record import stylegram_version

GROUPS = (gatys, feedforward, figures, visualize, deconvnets, tools, web)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stylegram", description="Neural style transfer (Gatys et al., Johnson et al.) "
                                "and what convolutional networks learn, on PyTorch.")
    p.add_argument("--version", action="version", version=f"stylegram {stylegram_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)  # each subcommand sets its own ``func``
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)  # argparse itself exits 2 with a usage line on bad arguments
    start = time.perf_counter()
    try:
        code: int = ns.func(ns)
    except StylegramError as e:
        print(f"stylegram: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stylegram: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # anything unexpected: one line, the traceback only on request
        if os.environ.get("STYLEGRAM_DEBUG"):
            raise
        print(f"stylegram: unexpected error: {type(e).__name__}: {e} (set STYLEGRAM_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_UNEXPECTED
    if ns.command in ("stylize", "demo"):
        say(ns, f"total time {time.perf_counter() - start:.1f} s")
    return code
