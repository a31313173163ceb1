"""Waiting for a task: adaptive interval, separate budgets for queued and running time,
an interrupt check honoured within a tick, and cancel called once.

Interval: each phase (queued, running) is polled every `fast_interval` for its first
`fast_window` seconds, so short tasks are noticed quickly; after that the interval doubles
up to `max_interval`, so long tasks cost about one poll per `max_interval`.

Expected running time: a workflow usually runs about as long as it did last time, so the
running time of finished tasks is remembered per workflow (`RUN_TIMES`, in this process).
When the running phase has an expected length E, each poll cuts the time left to E to a
third (polls at most `max_interval`, at least `near_interval` apart), so one lands just
after E; a task that is late is polled after 0.1, 0.2, 0.4 ... s of lateness (doubling,
capped); one more than `max_interval` late drops the expectation. A 60 s task is then
noticed within a tenth of a second for about one poll per 3.7 s, and a 0.4 s one without
waiting for the next quarter second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Hashable

from .api import RunningHubClient
from .errors import (ProtocolError, RunningHubError, ServerError, TaskTimeoutError, TransportError,
                     WaitInterrupted)
from .records import TaskResult, TaskState

log = logging.getLogger("runninghub_bridge.client")


@dataclass(frozen=True)
class PollPolicy:
    fast_interval: float = 0.25
    fast_window: float = 1.2
    growth: float = 2.0
    max_interval: float = 5.0
    max_queued_seconds: float = 3600.0
    max_running_seconds: float = 3600.0
    tick: float = 0.2  # interrupt checks at least this often
    progress_every: float = 1.0  # on_progress at least this often (and on each state change)
    near_interval: float = 0.1  # closest polls, around an expected end

    def next_interval(self, phase_elapsed: float, previous: float | None, expected: float | None = None) -> float:
        """Seconds to the next poll, `phase_elapsed` into the phase; `expected` is the
        phase's expected length when known (see the module doc)."""
        if expected is not None and phase_elapsed <= expected + self.max_interval:
            left = expected - phase_elapsed
            if left > 0:
                return min(self.max_interval, max(self.near_interval, left * 2 / 3))
            return min(self.max_interval, max(self.near_interval, -left))
        if phase_elapsed < self.fast_window or previous is None:
            return self.fast_interval
        return min(self.max_interval, max(self.fast_interval, previous * self.growth))


class RunTimes:
    """How long tasks of a kind (e.g. site + workflow id) ran, learned from finished ones:
    an average weighted towards the latest. Thread-safe; keeps the newest `capacity` kinds."""

    def __init__(self, weight: float = 0.5, capacity: int = 1000):
        self.weight = weight
        self.capacity = capacity
        self._seconds: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def expected(self, key: Hashable | None) -> float | None:
        if key is None:
            return None
        with self._lock:
            return self._seconds.get(key)

    def record(self, key: Hashable | None, seconds: float) -> None:
        if key is None or seconds < 0:
            return
        with self._lock:
            old = self._seconds.pop(key, None)
            self._seconds[key] = seconds if old is None else old + self.weight * (seconds - old)
            while len(self._seconds) > self.capacity:
                self._seconds.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._seconds.clear()


RUN_TIMES = RunTimes()


@dataclass(frozen=True)
class TaskProgress:
    """What the UI shows while waiting."""

    task_id: str
    state: TaskState
    elapsed: float  # since the wait started
    phase_elapsed: float  # in the current state
    polls: int


def _reattach_hint(task_id: str) -> str:
    return (f"The remote task {task_id} may still be running and billing: re-attach to it with "
            f"RH Fetch Outputs (task_id {task_id}) instead of queueing again.")


def wait_for_task(client: RunningHubClient, task_id: str, *, initial_state: TaskState = TaskState.QUEUED,
                  policy: PollPolicy | None = None, on_progress: Callable[[TaskProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep, run_time_key: Hashable | None = None,
                  run_times: RunTimes = RUN_TIMES) -> TaskResult:
    """Poll outputs until the task ends. Returns the result on SUCCESS; raises TaskFailedError
    (or TaskCancelledError) on failure, TaskTimeoutError past a budget (the task is left as it
    is), WaitInterrupted when `should_stop()` turns true (after one cancel call).

    `run_time_key` names the kind of task (e.g. site and workflow id) whose running time is
    learned in `run_times` and used to place the polls of its running phase."""
    policy = policy or PollPolicy()
    started = clock()
    state = initial_state if initial_state in (TaskState.QUEUED, TaskState.RUNNING) else TaskState.QUEUED
    phase_started = started
    polls = 0
    interval: float | None = None
    last_progress = float("-inf")
    expected = run_times.expected(run_time_key)
    last_running_poll: float | None = 0.0 if state is TaskState.RUNNING else None  # phase time of the last poll

    def report(force: bool = False) -> None:
        nonlocal last_progress
        now = clock()
        if on_progress is not None and (force or now - last_progress >= policy.progress_every):
            last_progress = now
            on_progress(TaskProgress(task_id, state, now - started, now - phase_started, polls))

    def stop_requested() -> bool:
        return should_stop is not None and should_stop()

    report(force=True)
    while True:
        interval = policy.next_interval(clock() - phase_started, interval,
                                        expected if state is TaskState.RUNNING else None)
        wake = clock() + interval
        while True:
            if stop_requested():
                raise _cancel_and_interrupt(client, task_id)
            remaining = wake - clock()
            if remaining <= 0:
                break
            sleep(min(policy.tick, remaining))
            report()

        polls += 1
        try:
            reply = client.outputs(task_id)
        except (TransportError, ProtocolError, ServerError) as exc:
            raise type(exc)(f"{exc} While waiting for task {task_id}. {_reattach_hint(task_id)}",
                            code=exc.code, task_id=task_id, site=exc.site) from exc

        if reply.state is TaskState.SUCCESS:
            if state is TaskState.RUNNING and last_running_poll is not None:
                # It ended between the last poll that saw it running and this one; an estimate
                # in the early part of that gap errs towards polling a little early next time
                # (a few more polls) rather than noticing late.
                seen_done = clock() - phase_started
                run_times.record(run_time_key, last_running_poll + (seen_done - last_running_poll) / 4)
            state = TaskState.SUCCESS
            report(force=True)
            log.info("task %s finished after %.1f s and %d polls", task_id, clock() - started, polls)
            return reply.result
        if reply.state in (TaskState.FAILED, TaskState.CANCEL):
            state = reply.state
            report(force=True)
            raise reply.failure
        if reply.state != state:
            log.debug("task %s: %s -> %s", task_id, state.value, reply.state.value)
            state = reply.state
            phase_started = clock()
            interval = None
            last_running_poll = 0.0 if state is TaskState.RUNNING else None
            report(force=True)
        elif state is TaskState.RUNNING:
            last_running_poll = clock() - phase_started

        phase_elapsed = clock() - phase_started
        budget = policy.max_queued_seconds if state is TaskState.QUEUED else policy.max_running_seconds
        if phase_elapsed > budget:
            raise TaskTimeoutError(
                f"RunningHub task {task_id} stayed {state.value.lower()} for more than {budget:.0f} s "
                f"(the wait limit). {_reattach_hint(task_id)}", task_id=task_id, site=client.site.name)


def _cancel_and_interrupt(client: RunningHubClient, task_id: str) -> WaitInterrupted:
    """Cancel once; report honestly whether the cancel went through."""
    try:
        client.cancel(task_id)
    except RunningHubError as exc:
        log.warning("cancel of task %s failed: %s", task_id, exc)
        return WaitInterrupted(f"Interrupted. Cancelling RunningHub task {task_id} failed ({exc}); "
                               "cancel it on the website to stop billing.", task_id=task_id, site=client.site.name)
    return WaitInterrupted(f"Interrupted; RunningHub task {task_id} was cancelled.", task_id=task_id,
                           site=client.site.name)


def with_budgets(policy: PollPolicy, *, queued: float | None = None, running: float | None = None) -> PollPolicy:
    return replace(policy, max_queued_seconds=queued if queued is not None else policy.max_queued_seconds,
                   max_running_seconds=running if running is not None else policy.max_running_seconds)
