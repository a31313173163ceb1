"""The runs and remote tasks this process is waiting on right now.

Shutdown stops every run (client/stop.py); each then cancels its own task exactly once
(or leaves it running, when so configured), also when its create was still in flight.
This registry lets the shutdown handler know when those runs have ended, so ComfyUI can exit without waiting for remote tasks.
The durable record of tasks is the task ledger's; this is only what is in flight now.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator


class InFlight:
    def __init__(self) -> None:
        self._tasks: dict[int, tuple[str, bool]] = {}
        self._cond = threading.Condition()
        self._next = 0

    @contextmanager
    def on(self, what: str, *, creating: bool = False) -> Iterator[None]:
        """Registers `what` (e.g. "task 123 on www.runninghub.cn") for the duration of the
        block; `creating`: a create whose reply is on its way (shutdown waits longer for it)."""
        with self._cond:
            self._next += 1
            entry = self._next
            self._tasks[entry] = (what, creating)
        try:
            yield
        finally:
            with self._cond:
                self._tasks.pop(entry, None)
                self._cond.notify_all()

    def tasks(self) -> list[str]:
        with self._cond:
            return [what for what, _ in self._tasks.values()]

    def creating(self) -> list[str]:
        """The creates whose reply is on its way."""
        with self._cond:
            return [what for what, creating in self._tasks.values() if creating]

    def wait_until_none(self, timeout: float) -> list[str]:
        """Block until no task is waited on, at most `timeout` s; the tasks still waited on."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return [what for what, _ in self._tasks.values()]


IN_FLIGHT = InFlight()
