"""An advisory lock between processes, on a file: two ComfyUIs sharing one user folder (one
task ledger) take turns on the same run, as two threads of one process do.

`flock` on POSIX, `msvcrt.locking` (one byte) on Windows; the system drops a lock when its
process dies, so a killed ComfyUI leaves no lock behind (only the empty file)."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class GaveUp(Exception):
    """The wait for the lock was given up (`held`'s `gave_up()` said so)."""


@contextmanager
def held(path: str, *, gave_up: Callable[[], bool], tick: float = 0.05) -> Iterator[None]:
    """Hold the lock of `path` (created if missing) for the block, waiting in `tick` steps
    while another process holds it; `gave_up()` true ends the wait (GaveUp, raised before
    the block only)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while not _try_lock(fd):
            if gave_up():
                raise GaveUp(f"the lock {path} is held by another process")
            time.sleep(tick)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
