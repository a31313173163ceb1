"""An advisory lock between processes, on a file: two ComfyUIs sharing one user folder (one
task ledger) take turns on the same run, as two threads of one process do.

`flock` on POSIX, `msvcrt.locking` (one byte) on Windows; the system drops a lock when its
process dies, so a killed ComfyUI leaves no lock behind (only the empty file)."""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger("runninghub_bridge.client")
_warned: set[str] = set()

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
    the block only). Where no lock can be had (a read-only folder, a network filesystem
    without locks) the block runs without one, as it did before there was a lock: logged once."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        _without_lock(path, exc)
        yield
        return
    try:
        locked = _wait_for(fd, path, gave_up, tick)
        try:
            yield
        finally:
            if locked:
                _unlock(fd)
    finally:
        os.close(fd)


def held_elsewhere(path: str) -> bool:
    """Whether someone holds the lock of `path` at this moment: another process, or a `held`
    block of this one. False when there is no such file or no lock can be had there (as
    `held` then runs without one). The check takes the lock for an instant when it is free:
    a `held` that asks in that instant waits one `tick`."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if not _try_lock(fd):
            return True
        _unlock(fd)
        return False
    except OSError:
        return False
    finally:
        os.close(fd)


def _wait_for(fd: int, path: str, gave_up: Callable[[], bool], tick: float) -> bool:
    """True once locked; False when the filesystem has no locks (ENOLCK, EOPNOTSUPP, ...)."""
    while True:
        try:
            if _try_lock(fd):
                return True
        except OSError as exc:
            _without_lock(path, exc)
            return False
        if gave_up():
            raise GaveUp(f"the lock {path} is held by another process")
        time.sleep(tick)


def _without_lock(path: str, exc: OSError) -> None:
    folder = os.path.dirname(path)
    if folder not in _warned:
        _warned.add(folder)
        log.warning("no lock file can be used in %s (%s): two ComfyUIs sharing this user folder could both "
                    "create the same run", folder, exc)
