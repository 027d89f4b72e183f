"""Server-Sent Events: the job's numbered events as ``id:``/``event:``/``data:`` blocks, resumable from the
``Last-Event-ID`` a reconnecting client sends, with a comment line as keep-alive.

The workers run in threads and the streams in the event loop; :class:`Hub` carries "job X has news" from the
first to the second without a thread per client: a worker calls :meth:`Hub.notify` (thread-safe, never blocks)
and every stream waiting on that job wakes up and reads what is new from the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from stylegram.web.jobs import Event, JobRunner

KEEPALIVE = 15.0  # seconds: proxies drop connections that stay silent for long


class Hub:
    """Wakes the event streams of a job when its runner publishes something."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self.closing = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, job_id: str) -> None:
        """Called from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop stopped between the check and the call
                loop.call_soon_threadsafe(self._wake, job_id)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closing = True
        for job_id in list(self._waiting):
            self.notify(job_id)

    def _wake(self, job_id: str) -> None:
        for event in self._waiting.get(job_id, ()):
            event.set()

    def subscribe(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiting.setdefault(job_id, set()).add(event)
        return event

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None:
        waiting = self._waiting.get(job_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiting[job_id]

    def listeners(self) -> int:
        return sum(len(s) for s in self._waiting.values())


def format_event(event: Event) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.data, separators=(',', ':'))}\n\n"


async def stream(runner: JobRunner, hub: Hub, job_id: str, after: int) -> AsyncIterator[str]:
    """The events of ``job_id`` after id ``after``, then each new one as it comes, until the job ends."""
    wake = hub.subscribe(job_id)
    try:
        yield "retry: 2000\n\n"  # how long a browser's EventSource waits before it reconnects
        while True:
            wake.clear()  # before reading: news published after the read sets it again
            try:
                events, finished = runner.events_after(job_id, after)
            except KeyError:  # the job was removed (kept too long): nothing more will come
                return
            for event in events:
                yield format_event(event)
                after = event.id
            if finished or hub.closing:
                return
            try:
                await asyncio.wait_for(wake.wait(), KEEPALIVE)
            except TimeoutError:
                yield ": keep-alive\n\n"
    finally:
        hub.unsubscribe(job_id, wake)
