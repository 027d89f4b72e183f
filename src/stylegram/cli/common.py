"""What every command shares: exit codes, flags derived from option dataclasses, progress, messages, Ctrl-C.

Exit codes: 0 done; 1 anything unexpected, or a run that diverged; 2 bad usage or bad input (one-line message,
no traceback: every :class:`~stylegram.core.errors.StylegramError`); 130 interrupted by Ctrl-C (the latest
image is still written).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO, TypeVar

from stylegram.core.errors import OptionsError, UsageError
from stylegram.core.events import OnStep, StepEvent
from stylegram.core.options import OptionField, Options, describe

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

OptionsT = TypeVar("OptionsT", bound=Options)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "Progress",
    "StopOnInterrupt",
    "UsageError",
    "add_option_flags",
    "options_from",
    "say",
    "split_list",
]


def split_list(kind: Callable[[str], Any], what: str | None = None) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type for comma-separated lists of ``kind``."""
    name = what or getattr(kind, "__name__", "values")

    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {name}, got {text!r}") from None

    return parse


def _argparse_type(f: OptionField) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return f.parse(text)
        except OptionsError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(f.flag + " ")) from None

    parse.__name__ = f.kind.__name__
    return parse


def add_option_flags(parser: argparse.ArgumentParser, cls: type[Options], *, skip: Sequence[str] = (),
                     only: Sequence[str] | None = None, base: Options | None = None,
                     extra_help: dict[str, str] | None = None) -> None:
    """One flag per field of the options dataclass ``cls`` (``--style-weight`` for ``style_weight``), with its
    help and default (``base``'s value when given). Flags default to None, meaning "not given", so that
    :func:`options_from` changes only what the user typed."""
    for f in describe(cls):
        if not f.cli or f.name in skip or (only is not None and f.name not in only):
            continue
        default = getattr(base, f.name) if base is not None else f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f.help + (extra_help or {}).get(f.name, "")
        text = text if default is None else f"{text} (default: {shown})"
        if f.kind is bool and not f.is_tuple:
            parser.add_argument(f.flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif f.choices is not None and not f.is_tuple:
            parser.add_argument(f.flag, choices=f.choices, default=None, help=text)
        else:
            parser.add_argument(f.flag, type=_argparse_type(f), default=None, help=text,
                                metavar="A,B,…" if f.is_tuple else None)


def options_from(ns: argparse.Namespace, base: OptionsT) -> OptionsT:
    """``base`` with the fields the user gave on the command line; bad values are an OptionsError (exit 2)."""
    changes = {f.name: getattr(ns, f.name) for f in describe(type(base)) if getattr(ns, f.name, None) is not None}
    return base.replace(**changes)


def say(ns: argparse.Namespace, text: str, force: bool = False) -> None:
    """A message on stderr, unless ``--quiet`` (``force``: always)."""
    if force or not getattr(ns, "quiet", False):
        print(text, file=sys.stderr)


class Progress:
    """One progress display for every command: a tqdm bar on a terminal; when stderr is redirected to a file,
    plain lines (the first update, then every ``every_percent`` but at most one per ``interval`` seconds, at
    least one per ``heartbeat`` seconds, and the last); nothing with ``--quiet``."""

    def __init__(self, total: int | None, *, unit: str = "it", initial: int = 0, quiet: bool = False,
                 stream: TextIO | None = None, every_percent: float = 5.0, interval: float = 2.0,
                 heartbeat: float = 30.0, label: str = "") -> None:
        self.stream = stream or sys.stderr
        self.total, self.n, self.unit, self.quiet, self.label = total, initial, unit, quiet, label
        self.postfix = ""
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.interval, self.heartbeat = every_percent, interval, heartbeat
        self.t0 = time.perf_counter()
        self._last_line, self._last_pct, self._first_n = -1.0, -100.0, initial
        self.bar: Any = None
        if self.terminal and not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, file=self.stream)

    def set_total(self, total: int) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.total = total

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.n += n
        self.postfix = "  ".join(f"{k}={_short(v)}" for k, v in postfix.items())
        if self.quiet:
            return
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix({k: _short(v) for k, v in postfix.items()}, refresh=False)
            self.bar.update(n)
            return
        now = time.perf_counter() - self.t0
        pct = 100.0 * self.n / self.total if self.total else 0.0
        finished = bool(self.total) and self.n >= (self.total or 0)
        first = self._last_line < 0
        due = ((pct - self._last_pct >= self.every and now - self._last_line >= self.interval)
               or now - self._last_line >= self.heartbeat)
        if first or finished or due:
            self._last_line, self._last_pct = now, pct
            self._line()

    def _line(self) -> None:
        elapsed = time.perf_counter() - self.t0
        where = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        pct = f" ({100.0 * self.n / self.total:.0f} %)" if self.total else ""
        head = f"{self.label}: " if self.label else ""
        rate = (self.n - self._first_n) / max(elapsed, 1e-9)
        print(f"{head}{where}{pct}, {elapsed:.0f} s, {rate:.3g} {self.unit}/s  {self.postfix}".rstrip(),
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class StopOnInterrupt:
    """First Ctrl-C asks the run to stop after the current step; a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


ResultT = TypeVar("ResultT")


def run_with_progress(run: Callable[[OnStep], ResultT], progress: Progress, *, stage_label: str = "stage",
                      by_iteration: bool = False) -> ResultT:
    """``run(on_step)`` with ``progress`` advanced at every event and showing its losses (and, when the run
    has several stages, ``stage_label`` = "k/n"); the first Ctrl-C stops the run after the current step, and
    the display is closed however the run ends.

    ``by_iteration`` advances by the events' ``iteration`` counts (per stage) instead of one per event, for runs
    whose events come at intervals."""
    seen: dict[int, int] = {}
    with StopOnInterrupt() as stop:

        def step(event: StepEvent) -> bool:
            n = event.iteration - seen.get(event.stage, 0) if by_iteration else 1
            seen[event.stage] = event.iteration
            stage = {stage_label: f"{event.stage + 1}/{event.stages}"} if event.stages > 1 else {}
            progress.update(n, **stage, **event.losses)
            return stop.requested

        try:
            return run(step)
        finally:
            progress.close()
