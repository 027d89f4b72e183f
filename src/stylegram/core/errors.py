"""One error model: every mistake a user can fix is a :class:`StylegramError`.

Front ends (the command line, the web app) catch this one base class: its message is one line that says what is
wrong and what to do, and is shown without a traceback (exit code 2, HTTP 400/422). Anything else that escapes the
library is a bug. The subclasses only say where the problem was found; none adds behaviour.

:class:`StylegramError` derives from :class:`ValueError`, so code written against the earlier per-module errors
(``except ValueError``) keeps working.
"""

from __future__ import annotations


class StylegramError(ValueError):
    """Bad input or bad usage, reported in one line: a file that cannot be read, an option out of range, …"""


class UsageError(StylegramError):
    """Options or arguments that do not fit together, or a place that cannot be written."""


class OptionsError(UsageError):
    """An option value out of range, not finite, or not one of its choices (see :mod:`stylegram.core.options`)."""


class ImageError(StylegramError):
    """A bad image input or output, with a one-line message that names the file."""
