"""The one progress display: plain, sparse lines when stderr is not a terminal (a log file stays readable)."""

from __future__ import annotations

import io

from stylegram.cli.common import Progress


def test_redirected_progress_prints_a_line_every_few_percent() -> None:
    out = io.StringIO()
    p = Progress(1000, stream=out, every_percent=5, interval=0.0, heartbeat=1e9)
    for _ in range(1000):
        p.update(1, loss=1.5)
    p.close()
    lines = out.getvalue().splitlines()
    assert 20 <= len(lines) <= 22  # the first update, one per 5 %, and the last
    assert lines[0].startswith("1/1000 it (0 %)") and "it/s" in lines[0] and "loss=1.5" in lines[0]
    assert lines[-1].startswith("1000/1000 it (100 %)")
    assert "\r" not in out.getvalue()


def test_redirected_progress_is_rate_limited_and_quiet_means_nothing() -> None:
    out = io.StringIO()
    p = Progress(100, stream=out, every_percent=1, interval=3600, heartbeat=1e9)
    for _ in range(100):
        p.update()
    assert len(out.getvalue().splitlines()) == 2  # the first and the last: the others came too soon
    quiet = io.StringIO()
    q = Progress(10, stream=quiet, quiet=True)
    q.update(10)
    assert quiet.getvalue() == ""


def test_a_resumed_count_starts_where_it_left_off() -> None:
    out = io.StringIO()
    p = Progress(10, initial=6, stream=out, interval=0.0)
    p.update()
    assert out.getvalue().startswith("7/10 it (70 %)")
