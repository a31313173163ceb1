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

_runs: dict[tuple[str, int], Callable[[], bool]] = {}
_changed = threading.Condition()


def follow(ledger_path: str, entry: int, should_stop: Callable[[], bool] | None) -> None:
    """The calling run follows `entry` of the ledger at `ledger_path`, stopped when `should_stop()`."""
    if should_stop is None:
        return
    with _changed:
        _runs[(ledger_path, int(entry))] = should_stop


def unfollow(ledger_path: str, entry: int | None) -> None:
    if entry is None:
        return
    with _changed:
        if _runs.pop((ledger_path, int(entry)), None) is not None:
            _changed.notify_all()


def wait_if_stopping(ledger_path: str, entry: int, *, gave_up: Callable[[], bool] = lambda: False,
                     limit: float = STOPPING_LIMIT) -> bool:
    """True when a run of this process following `entry` had been told to stop and is now
    done (look the entry up again); False when there is none (or `gave_up()`, or `limit`
    seconds passed: the caller then goes on with the entry as it is)."""
    key = (ledger_path, int(entry))
    deadline = time.monotonic() + limit
    with _changed:
        stopped = _runs.get(key)
        if stopped is None or not _stopping(stopped):
            return False
        while key in _runs and time.monotonic() < deadline and not gave_up():
            _changed.wait(_TICK)
        return key not in _runs


def _stopping(should_stop: Callable[[], bool]) -> bool:
    try:
        return bool(should_stop())
    except Exception:  # noqa: BLE001 - a stop that cannot say is not a stop to wait for
        return False
