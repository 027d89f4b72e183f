"""The ``stylegram`` command: parsing, progress, messages and exit codes only. Each command group has its own
module on the small common one (:mod:`.common`); every command calls a library use case."""

from stylegram.cli.main import main

__all__ = ["main"]
