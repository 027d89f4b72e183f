"""Atomic file writes: readers see the old file or the complete new one, never half a file.

Every file stylegram writes (images, metadata, weights, checkpoints, models) goes through :func:`atomic_open`:
a temporary file beside the target, flushed to disk, then renamed over it; on any error, Ctrl-C included, the
temporary file is removed and the old file is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from stylegram.core.errors import UsageError


def check_writable(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = (),
                   what: str = "output") -> Path:
    """Refuse, before any work, a file that could not be written: a folder, a path under a file, a place that
    cannot be created or written, or one of the ``inputs`` (an input file is never overwritten)."""
    target = Path(path)
    name = os.fspath(path)
    if target.is_dir():
        raise UsageError(f"cannot write the {what} '{name}': it is a directory")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write the {what} '{name}': '{parent}' is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_in(parent):
        raise UsageError(f"cannot write the {what} '{name}': no permission to write in '{parent}'")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"cannot write the {what} '{name}': the file exists and is read-only")
    for source in inputs:
        if same_file(target, Path(source)):
            raise UsageError(f"refusing to write '{name}': it is the input '{os.fspath(source)}', "
                             "and an input file is never overwritten")
    return target


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be made in ``folder`` (permissions say yes to root, read-only mounts say no)."""
    probe = folder / f".stylegram-probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (or, for paths that do not exist yet, lead to the same place)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where the paths lead
        pass
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return os.path.abspath(a) == os.path.abspath(b)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file to write that replaces ``path`` when the block ends without error.

    Missing parent folders are created; failures raise OSError (or whatever the block raised).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = _create_temp(target)
    try:
        with open(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # the data must be on disk before the rename makes it visible
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` all at once (see :func:`atomic_open`)."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` for text, encoded as UTF-8 with newlines written as given."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _create_temp(target: Path) -> tuple[int, Path]:
    # Not tempfile.mkstemp: it creates mode 0600, which os.replace would carry over to the final file.
    # Mode 0666 here lets the umask decide, as for any ordinary write. Same folder, so the rename is atomic.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = target.with_name(f".{target.name[:200]}.{secrets.token_hex(6)}.tmp")
        with contextlib.suppress(FileExistsError):
            return os.open(temp, flags, 0o666), temp
    raise FileExistsError(f"could not create a temporary file beside {target}")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself survive a power cut. Windows and some filesystems cannot fsync a folder;
    # there the write is still atomic, only its durability is up to the OS.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
