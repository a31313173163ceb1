"""Which run of this process follows which task ledger entry, and with which stop.

A run told to stop (the user's interrupt, or ComfyUI abandoning the node when another node
of its prompt failed) cancels its task a moment later, in its own thread. A re-queue of the
same run that looks the entry up in that moment would re-attach to a task about to be
cancelled under it, and end "cancelled". So a lookup that finds an entry still on its way
asks `wait_if_stopping` first: when a run of this process follows that entry and has been
told to stop, it waits until that run is done (its cancel recorded, or its failure to
cancel) and then looks again. Runs register from the moment their entry exists
(`follow`) until their wait has ended (`unfollow`).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

STOPPING_LIMIT = 60.0  # seconds a lookup waits for a stopped run to finish its cancel
_TICK = 0.05

_runs: dict[tuple[str, int], list[Callable[[], bool]]] = {}  # (ledger, entry) -> the stops of its followers
_changed = threading.Condition()


def follow(ledger_path: str, entry: int, should_stop: Callable[[], bool] | None) -> None:
    """A run follows `entry` of the ledger at `ledger_path`, stopped when `should_stop()`
    (twin runs may follow one entry: each registers its own stop)."""
    if should_stop is None:
        return
    with _changed:
        _runs.setdefault((ledger_path, int(entry)), []).append(should_stop)


def unfollow(ledger_path: str, entry: int | None, should_stop: Callable[[], bool] | None) -> None:
    """The run whose stop is `should_stop` no longer follows `entry` (no-op when it did not)."""
    if entry is None or should_stop is None:
        return
    key = (ledger_path, int(entry))
    with _changed:
        stops = _runs.get(key, [])
        if should_stop in stops:
            stops.remove(should_stop)
            if not stops:
                del _runs[key]
            _changed.notify_all()


def wait_if_stopping(ledger_path: str, entry: int, *, gave_up: Callable[[], bool] = lambda: False,
                     limit: float = STOPPING_LIMIT) -> bool:
    """True when a run of this process following `entry` had been told to stop and is now
    done (look the entry up again); False when there is none (or `gave_up()`, or `limit`
    seconds passed: the caller then goes on with the entry as it is)."""
    key = (ledger_path, int(entry))
    deadline = time.monotonic() + limit
    with _changed:
        if not _stopping_followers(key):
            return False
        while _stopping_followers(key) and time.monotonic() < deadline and not gave_up():
            _changed.wait(_TICK)
        return not _stopping_followers(key)


def _stopping_followers(key: tuple[str, int]) -> bool:
    return any(_stopping(stop) for stop in _runs.get(key, ()))


def _stopping(should_stop: Callable[[], bool]) -> bool:
    try:
        return bool(should_stop())
    except Exception:  # noqa: BLE001 - a stop that cannot say is not a stop to wait for
        return False
