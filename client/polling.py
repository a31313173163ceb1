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

Trouble reaching RunningHub (network errors, HTTP 5xx and 429, RunningHub's own code 500)
never abandons a task: the wait backs off (retry.RetryPolicy, growing to `outage_delay`)
and polls again for as long as the phase's budget allows. Only a definite answer ends it
(success, failed, cancelled, unknown task, a refused key, a reply that is not RunningHub's
protocol).

The task's websocket: given `open_socket`, the wait follows the socket of a running task
(its `netWssUrl`, from create or an 804 reply; client/task_socket.py) for the remote
node, its steps and nodes done, reported in `TaskProgress.remote`. While the socket is
healthy the running phase is polled only every `heartbeat` s; when the socket says the
prompt ended, outputs are polled at once; when it drops, the schedule above resumes. The
socket never decides the outcome: the outputs reply does.

Stopping: the wait checks the run's stop (client/stop.py) every `tick`, also inside the
transport's own backoff; when it turns true the task is cancelled exactly once (or left
running when the process shuts down with that setting). While it waits, the task is in
`inflight.IN_FLIGHT`, so shutdown knows when every wait has ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Hashable

from .api import RunningHubClient
from .errors import ProtocolError, RunningHubError, ServerError, TaskTimeoutError, TransportError, WaitInterrupted
from .records import TaskResult, TaskState
from .remote_progress import RemoteProgress
from .retry import RetryPolicy
from .stop import TICK, shielded, stop_requested, stop_when, tasks_left_running
from .task_socket import OpenSocket, SocketFeed
from .inflight import IN_FLIGHT

log = logging.getLogger("runninghub_bridge.client")


@dataclass(frozen=True)
class PollPolicy:
    fast_interval: float = 0.25
    fast_window: float = 1.2
    growth: float = 2.0
    max_interval: float = 5.0
    max_queued_seconds: float = 3600.0
    max_running_seconds: float = 3600.0
    tick: float = TICK  # interrupt checks at least this often
    progress_every: float = 1.0  # on_progress at least this often (and on each state change)
    near_interval: float = 0.1  # closest polls, around an expected end
    heartbeat: float = 10.0  # between polls of a running task while its socket is healthy
    remote_every: float = 0.1  # on_progress at most this often for socket news
    outage: RetryPolicy = RetryPolicy(base_delay=1.0, max_delay=15.0)  # between polls that failed

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
    trouble: str | None = None  # why the last poll failed (the wait goes on)
    remote: RemoteProgress | None = None  # what the task's socket says, once it said anything


def _reattach_hint(task_id: str) -> str:
    return (f"The remote task {task_id} may still be running and billing: re-attach to it with "
            f"RH Fetch Outputs (task_id {task_id}) instead of queueing again.")


def wait_for_task(client: RunningHubClient, task_id: str, *, initial_state: TaskState = TaskState.QUEUED,
                  policy: PollPolicy | None = None, on_progress: Callable[[TaskProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep, run_time_key: Hashable | None = None,
                  run_times: RunTimes = RUN_TIMES, net_wss_url: str | None = None,
                  open_socket: OpenSocket | None = None, cancel_on_stop: bool = True) -> TaskResult:
    """Poll outputs until the task ends. Returns the result on SUCCESS; raises TaskFailedError
    (or TaskCancelledError) on failure, TaskTimeoutError past a budget (the task is left as it
    is), WaitInterrupted when the run is stopped (`should_stop()`, or the enclosing run's
    stop: after one cancel call).

    `run_time_key` names the kind of task (e.g. site and workflow id) whose running time is
    learned in `run_times` and used to place the polls of its running phase.

    `open_socket(url)` starts following the task's websocket (None: do not follow it);
    `net_wss_url` is the one the create reply gave, if any. `cancel_on_stop` False: a stop
    leaves the task running (a task this run did not create, e.g. RH Fetch Outputs
    re-attaching by task id)."""
    with stop_when(should_stop), IN_FLIGHT.on(f"task {task_id} on {client.site.host}"):
        wait = _Wait(client, task_id, initial_state, policy or PollPolicy(), on_progress, clock, sleep,
                     run_time_key, run_times, SocketFeed(task_id, open_socket), cancel_on_stop=cancel_on_stop)
        try:
            if wait.state is TaskState.RUNNING:
                wait.feed.follow(net_wss_url)
            return wait.run()
        finally:
            wait.feed.close()


class _Wait:
    """The state of one wait_for_task: phase, poll schedule, outage backoff, the socket feed."""

    def __init__(self, client, task_id, initial_state, policy, on_progress, clock, sleep, run_time_key, run_times,
                 feed: SocketFeed, *, cancel_on_stop: bool = True):
        self.feed = feed
        self.client, self.task_id, self.policy = client, task_id, policy
        self.on_progress, self.clock, self.sleep = on_progress, clock, sleep
        self.run_time_key, self.run_times = run_time_key, run_times
        self.started = self.phase_started = clock()
        self.state = initial_state if initial_state in (TaskState.QUEUED, TaskState.RUNNING) else TaskState.QUEUED
        self.ended_before = initial_state.finished  # a re-attach to a task that ended: a stop cancels nothing
        self.cancel_on_stop = cancel_on_stop
        self.polls = 0
        self.interval: float | None = None
        self.last_progress = float("-inf")
        self.expected = run_times.expected(run_time_key)
        # phase time of the last poll that saw it running
        self.last_running_poll: float | None = 0.0 if self.state is TaskState.RUNNING else None
        self.failures = 0  # polls failed in a row
        self.trouble: str | None = None

    def report(self, force: bool = False) -> None:
        now = self.clock()
        if self.on_progress is not None and (force or now - self.last_progress >= self.policy.progress_every):
            self.last_progress = now
            self.on_progress(TaskProgress(self.task_id, self.state, now - self.started, now - self.phase_started,
                                          self.polls, self.trouble, self.feed.remote()))

    def heartbeat_only(self) -> bool:
        """Whether polls may wait for the heartbeat: running, reachable, socket healthy."""
        return self.state is TaskState.RUNNING and not self.failures and self.feed.healthy

    def nap(self, seconds: float) -> None:
        """Sleep `seconds`, waking early to report what the socket says."""
        if self.feed.nap(seconds, self.sleep) and self.clock() - self.last_progress >= self.policy.remote_every:
            self.report(force=True)

    def run(self) -> TaskResult:
        self.report(force=True)
        while True:
            self.wait_for_next_poll()
            reply = self.poll()
            if reply is not None:
                result = self.take(reply)
                if result is not None:
                    return result
            self.check_budget()

    def next_interval(self) -> float:
        if self.failures:
            return self.policy.outage.delay(self.failures)
        self.interval = self.policy.next_interval(self.clock() - self.phase_started, self.interval,
                                                  self.expected if self.state is TaskState.RUNNING else None)
        return self.interval

    def wait_for_next_poll(self) -> None:
        """Until the next poll is due: the adaptive interval, or the heartbeat while the
        socket is healthy; at once when the socket says the prompt ended."""
        since, interval = self.clock(), self.next_interval()
        while True:
            if stop_requested():
                raise self.stopped()
            if self.feed.says_ended():
                return
            due = max(interval, min(self.policy.heartbeat, self.budget_left(since))) if self.heartbeat_only() \
                else interval
            remaining = since + due - self.clock()
            if remaining <= 0:
                return
            self.nap(min(self.policy.tick, remaining))
            self.report()

    def stopped(self) -> WaitInterrupted:
        return _stop(self.client, self.task_id, ended=self.ended_before, cancel=self.cancel_on_stop)

    def poll(self):
        """One outputs poll; None when it failed in a way worth polling again."""
        self.polls += 1
        try:
            reply = self.client.outputs(self.task_id)
        except WaitInterrupted:  # stopped inside the transport's backoff
            raise self.stopped() from None
        except ProtocolError as exc:  # not RunningHub answering: waiting on would not help
            raise ProtocolError(f"{exc} While waiting for task {self.task_id}. {_reattach_hint(self.task_id)}",
                                code=exc.code, task_id=self.task_id, site=exc.site) from exc
        except (TransportError, ServerError) as exc:
            self.failures += 1
            self.trouble = f"cannot reach RunningHub ({exc}); trying again"
            log.warning("task %s: poll %d failed (%s); the wait goes on", self.task_id, self.polls, exc)
            self.report(force=self.failures == 1)
            return None
        if self.failures:
            log.info("task %s: RunningHub answers again after %d failed poll(s)", self.task_id, self.failures)
        self.failures, self.trouble = 0, None
        return reply

    def take(self, reply) -> TaskResult | None:
        """Follow the state the poll saw; the result once SUCCESS."""
        if reply.state is TaskState.SUCCESS:
            if self.state is TaskState.RUNNING and self.last_running_poll is not None:
                # It ended between the last poll that saw it running and this one; an estimate
                # in the early part of that gap errs towards polling a little early next time
                # (a few more polls) rather than noticing late.
                seen_done = self.clock() - self.phase_started
                self.run_times.record(self.run_time_key,
                                      self.last_running_poll + (seen_done - self.last_running_poll) / 4)
            self.state = TaskState.SUCCESS
            self.report(force=True)
            log.info("task %s finished after %.1f s and %d polls", self.task_id, self.clock() - self.started,
                     self.polls)
            return reply.result
        if reply.state in (TaskState.FAILED, TaskState.CANCEL):
            self.state = reply.state
            self.report(force=True)
            raise reply.failure
        if reply.state != self.state:
            log.debug("task %s: %s -> %s", self.task_id, self.state.value, reply.state.value)
            self.state = reply.state
            self.phase_started = self.clock()
            self.interval = None
            self.last_running_poll = 0.0 if self.state is TaskState.RUNNING else None
            self.report(force=True)
        elif self.state is TaskState.RUNNING:
            self.last_running_poll = self.clock() - self.phase_started
        if self.state is TaskState.RUNNING:
            self.feed.follow(getattr(reply, "net_wss_url", None))
        return None

    def budget(self) -> float:
        return self.policy.max_queued_seconds if self.state is TaskState.QUEUED else self.policy.max_running_seconds

    def budget_left(self, at: float) -> float:
        """Seconds left at `at` of the current phase's budget (the heartbeat never outlasts it)."""
        return max(0.0, self.budget() - (at - self.phase_started))

    def check_budget(self) -> None:
        phase_elapsed = self.clock() - self.phase_started
        budget = self.budget()
        if phase_elapsed > budget:
            trouble = f" The last polls failed: {self.trouble}." if self.trouble else ""
            raise TaskTimeoutError(
                f"RunningHub task {self.task_id} stayed {self.state.value.lower()} for more than {budget:.0f} s "
                f"(the wait limit).{trouble} {_reattach_hint(self.task_id)}", task_id=self.task_id,
                site=self.client.site.name)


def _stop(client: RunningHubClient, task_id: str, *, ended: bool = False, cancel: bool = True) -> WaitInterrupted:
    """The run stopped: cancel the task once, or leave it running when ComfyUI shuts down
    with RUNNINGHUB_ON_SHUTDOWN=leave, or when the run did not create it (`cancel` False);
    a task already finished (a re-attach to a success fetching its outputs again) is left as
    it is."""
    if ended:
        return WaitInterrupted(f"Interrupted; RunningHub task {task_id} had already finished.", task_id=task_id,
                               site=client.site.name)
    if not cancel:
        return WaitInterrupted(f"Stopped waiting; RunningHub task {task_id} was left running: this prompt did not "
                               f"start it (cancel it in the task panel or on the website if it is not wanted). Fetch "
                               f"its outputs later with RH Fetch Outputs (task_id {task_id}).", task_id=task_id,
                               site=client.site.name)
    if tasks_left_running():
        log.warning("shutting down: RunningHub task %s left running (re-attach with RH Fetch Outputs)", task_id)
        return WaitInterrupted(f"ComfyUI is shutting down; RunningHub task {task_id} was left running. "
                               f"{_reattach_hint(task_id)}", task_id=task_id, site=client.site.name)
    with shielded():
        return _cancel_and_interrupt(client, task_id)


def _cancel_and_interrupt(client: RunningHubClient, task_id: str) -> WaitInterrupted:
    """Cancel once; report honestly whether the cancel went through."""
    try:
        client.cancel(task_id)
    except RunningHubError as exc:
        log.warning("cancel of task %s failed: %s", task_id, exc)
        return WaitInterrupted(f"Interrupted. Cancelling RunningHub task {task_id} failed ({exc}); it may still run "
                               f"and bill. {_KEPT}", task_id=task_id, site=client.site.name)
    return WaitInterrupted(f"Interrupted; RunningHub task {task_id} was cancelled.", cancelled=True, task_id=task_id,
                           site=client.site.name)


_KEPT = ("The task panel keeps it (cancel it there, or on the website), and queueing the same graph again "
         "re-attaches to it instead of creating another.")


def with_budgets(policy: PollPolicy, *, queued: float | None = None, running: float | None = None) -> PollPolicy:
    return replace(policy, max_queued_seconds=queued if queued is not None else policy.max_queued_seconds,
                   max_running_seconds=running if running is not None else policy.max_running_seconds)
