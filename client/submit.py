"""Submitting when the account is at capacity.

415 / 421 / 814 replies mean nothing was created, so waiting and resubmitting is safe;
anything else is raised at once. The wait has its own budget and honours interrupts.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from .errors import CapacityError, WaitInterrupted

log = logging.getLogger("runninghub_bridge.client")
T = TypeVar("T")


def submit_when_capacity(submit: Callable[[], T], *, budget_seconds: float = 600.0,
                         first_delay: float = 1.0, max_delay: float = 15.0,
                         should_stop: Callable[[], bool] | None = None,
                         on_wait: Callable[[CapacityError, float], None] | None = None,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep, tick: float = 0.2) -> T:
    """Call `submit()` until it does not raise CapacityError or the budget is spent."""
    started = clock()
    delay = first_delay
    while True:
        try:
            return submit()
        except CapacityError as exc:
            waited = clock() - started
            if waited + delay > budget_seconds:
                raise CapacityError(f"{exc} Still no capacity after waiting {waited:.0f} s "
                                    f"(queue budget {budget_seconds:.0f} s); nothing was created. Queue again "
                                    "later, or add keys to the profile to form a pool.",
                                    code=exc.code, site=exc.site) from exc
            pause = delay * (0.5 + 0.5 * random.random())
            log.info("no capacity (%s); resubmitting in %.1f s", exc.code, pause)
            if on_wait is not None:
                on_wait(exc, pause)
            wake = clock() + pause
            while clock() < wake:
                if should_stop is not None and should_stop():
                    raise WaitInterrupted("Interrupted while waiting for RunningHub capacity; nothing was created.",
                                          site=exc.site) from exc
                sleep(min(tick, max(0.0, wake - clock())))
            delay = min(max_delay, delay * 2)
