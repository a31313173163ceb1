"""The stop of the run a thread works for, read (never consumed) by every wait below it.

A run's `should_stop` (an interrupt, a failed sibling, an abandoned prompt) is set once
around the run with `stop_when`; polling, the transport's backoff and downloads find it
with `stop_requested` instead of each taking a parameter. It is a context variable, so it
follows the run into `contextvars.copy_context().run` worker threads and never leaks into
another run's thread. Shutdown (`shut_down`) stops every run at once.
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, TypeVar

from .errors import WaitInterrupted
from .inflight import IN_FLIGHT

T = TypeVar("T")

TICK = 0.2  # every wait checks the stop at least this often

_shutdown = threading.Event()
_leave_tasks_running = False
_current: ContextVar[Callable[[], bool] | None] = ContextVar("runninghub_should_stop", default=None)


def _never() -> bool:
    return False


def stop_requested() -> bool:
    """True when the current run should stop, or the process is shutting down."""
    check = _current.get()
    if check is _never:
        return False
    return _shutdown.is_set() or (check is not None and bool(check()))


@contextmanager
def stop_when(should_stop: Callable[[], bool] | None) -> Iterator[None]:
    """Make `should_stop` the stop of everything this thread (and the context copies it
    hands out) does inside the block; None keeps the enclosing run's stop."""
    if should_stop is None:
        yield
        return
    token = _current.set(should_stop)
    try:
        yield
    finally:
        _current.reset(token)


def run_with_stop(should_stop: Callable[[], bool] | None, call: Callable[..., T], /, *args, **kwargs) -> T:
    """`call(*args, **kwargs)` with `should_stop` as the stop of everything it waits on.
    It counts among the runs shutdown waits for (client/inflight.py) from its first line:
    a create still in flight when ComfyUI is stopped gets its task cancelled too."""
    with stop_when(should_stop), IN_FLIGHT.on(f"a run of {getattr(call, '__name__', 'the pack')}"):
        return call(*args, **kwargs)


@contextmanager
def shielded() -> Iterator[None]:
    """A block no stop interrupts, shutdown included: the cancel that follows a stop must
    still go out (its own deadline bounds it)."""
    token = _current.set(_never)
    try:
        yield
    finally:
        _current.reset(token)


def pause(seconds: float, *, sleep: Callable[[float], None] = time.sleep, tick: float = TICK) -> bool:
    """Sleep `seconds` in slices of at most `tick`; False as soon as a stop is requested."""
    left = seconds
    while left > 1e-6:  # float slices leave crumbs
        if stop_requested():
            return False
        step = min(tick, left)
        sleep(step)
        left -= step
    return not stop_requested()


def stoppable(call: Callable[[], T], *, what: str, on_abandoned: Callable[[T], None] | None = None) -> T:
    """`call()` (a request that may block for its whole read timeout) in a helper thread while
    this one watches the run's stop: a stop abandons it at once (WaitInterrupted; the call
    runs out in the background and `on_abandoned(result)` tidies what it returns). Only for
    calls that are safe to abandon (reads, repeatable uploads). Runs inline when no run's
    stop is in effect, or in a shielded block. The helper is a daemon thread of its own: an
    abandoned call never holds up ComfyUI's exit (an executor's threads are joined at exit)."""
    check = _current.get()
    if check is None or check is _never:
        return call()
    future: Future = Future()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            result = context.run(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=work, name="rh-stoppable", daemon=True).start()
    while True:
        try:
            return future.result(timeout=TICK)
        except FutureTimeout:
            if stop_requested():
                if on_abandoned is not None:
                    future.add_done_callback(lambda done: _tidy(done, on_abandoned))
                raise WaitInterrupted(f"Interrupted during the {what}.") from None


def _tidy(done: Future, on_abandoned: Callable[[T], None]) -> None:
    if not done.cancelled() and done.exception() is None:
        on_abandoned(done.result())


def shut_down(*, leave_tasks_running: bool = False) -> None:
    """Stop every run of this process (SIGINT/SIGTERM); their remote tasks are cancelled,
    or left running (to re-attach later) with `leave_tasks_running`."""
    global _leave_tasks_running
    _leave_tasks_running = leave_tasks_running
    _shutdown.set()


def shutting_down() -> bool:
    return _shutdown.is_set()


def tasks_left_running() -> bool:
    """Whether a stop by shutdown leaves remote tasks running instead of cancelling them."""
    return _shutdown.is_set() and _leave_tasks_running
