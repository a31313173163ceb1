"""The one retry helper: how long to wait before the next attempt, and the wait itself.

Both the API transport and the output downloads retry through `Attempts`: jittered,
capped exponential backoff (RetryPolicy.delay, apart from the decision to retry, which
stays with the caller), `Retry-After` honoured up to a cap, an overall deadline for the
operation, and a stop checked every `stop.TICK` while waiting (WaitInterrupted then).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from .errors import WaitInterrupted
from .stop import pause, stop_requested


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter exponential backoff for attempt 1, 2, ...; Retry-After wins (capped)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * rng())


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the delay form; an HTTP date is ignored)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class Attempts:
    """The attempts of one operation, from its first try to its deadline.

        attempts = Attempts(policy, deadline=60, what="download of ...")
        while True:
            attempts.begin()          # WaitInterrupted if the run was stopped
            try: return do_it()
            except Transient as exc: ...
            if not attempts.backoff(retry_after): raise the last failure
    """

    def __init__(self, policy: RetryPolicy, *, deadline: float, what: str,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self.deadline = deadline
        self.what = what
        self._sleep = sleep
        self._clock = clock
        self.started = clock()
        self.count = 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    @property
    def remaining(self) -> float:
        return self.deadline - self.elapsed

    def begin(self) -> int:
        """Start the next attempt (its number); WaitInterrupted when the run was stopped."""
        self.check_stop()
        self.count += 1
        return self.count

    def check_stop(self) -> None:
        if stop_requested():
            raise WaitInterrupted(f"Interrupted during the {self.what}.")

    def backoff(self, retry_after: float | None = None) -> float | None:
        """Wait before the next attempt and return the delay waited; None (without
        waiting) when the attempts or the deadline are used up. WaitInterrupted when the
        run is stopped while waiting."""
        delay = self.policy.delay(self.count, retry_after)
        if self.count >= self.policy.attempts or self.elapsed + delay > self.deadline:
            return None
        if not pause(delay, sleep=self._sleep):
            raise WaitInterrupted(f"Interrupted while waiting to retry the {self.what}.")
        return delay
