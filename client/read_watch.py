"""One watchdog thread for every response body being read: a read blocks in its socket until
bytes arrive (one byte a second from a trickling server), so the reading thread cannot see
the run's stop or its deadline by itself. `watching(resp, should_cut)` registers a read;
every TICK the watchdog asks each registered read's `should_cut()` (in the reader's
context: the run's stop is a context variable) and shuts the socket's reading side of
those that say yes, so their read ends at once.

One thread for the process, started with the first read and idle between ticks, instead
of a thread per download (a fetch of fifty outputs started fifty).
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import requests

from .stop import TICK


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[int, tuple[contextvars.Context, requests.Response, Callable[[], bool]]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, resp: requests.Response, should_cut: Callable[[], bool]) -> Iterator[None]:
        read_id = next(self._ids)
        with self._lock:
            self._reads[read_id] = (contextvars.copy_context(), resp, should_cut)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rh-read-watch", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._reads.pop(read_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                reads = list(self._reads.items())
            for read_id, (context, resp, should_cut) in reads:
                try:
                    cut = context.run(should_cut)
                except Exception:  # noqa: BLE001 - a broken check cuts its read rather than hang it
                    cut = True
                if cut:
                    with self._lock:  # held while cutting: a read that ended meanwhile (its
                        if self._reads.pop(read_id, None) is not None:  # connection maybe reused) is left alone
                            shut_read_side(resp)


def shut_read_side(resp: requests.Response) -> None:
    """urllib3 2.3+ has HTTPResponse.shutdown (safe from another thread); older ones leave
    the read to its read timeout."""
    shutdown = getattr(resp.raw, "shutdown", None)
    if shutdown is None:
        return
    try:
        shutdown()
    except (OSError, ValueError, RuntimeError):
        pass  # already closed or released: the read is over anyway


WATCHDOG = _Watchdog()
watching = WATCHDOG.watching
