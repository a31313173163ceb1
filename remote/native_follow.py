"""Following one submitted native prompt to its end. Progress comes from the prompt's /ws
(the remote node, its steps, nodes done / total, as RunStatus); the outcome from /history
(native_result.decide), read once when the socket says it is written (`executing` null, or
SETTLE_GRACE after `execution_success`). A silent or dropped socket falls back to polling
/queue + /history on the workflow runs' schedule (client/polling.PollPolicy). The run's
stop interrupts or dequeues the prompt (native_stop.stop_prompt).

**The socket instead of the history**, for a success only and only when it heard it all:
one connection, open before the prompt was sent (`heard_from_start`), that brought its
`execution_success` and an `executed` output for every node the caller needs
(`needed_outputs`). ComfyUI writes the same outputs into the history; reading them from the
socket saves a round trip to RunningHub at the end of every run. Anything less (a
reconnect, a missing output, an error, an interrupt) reads the history as above."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ..client.errors import (FailureReason, ProtocolError, RunningHubError, ServerError, TaskCancelledError,
                             TaskFailedError, TaskNotFoundError, TaskTimeoutError, TransportError, WaitInterrupted)
from ..client.native import Lookup, NativeClient, Place
from ..client.polling import PollPolicy
from ..client.remote_progress import RemoteProgress
from ..client.stop import stop_requested, tasks_left_running
from ..client.task_socket import TaskSocket
from .native_record import NativeRecord
from .native_result import NativePromptResult, decide
from .native_stop import stop_prompt
from .status import STATE_WORDS, RunStatus

log = logging.getLogger("runninghub_bridge.remote")

SETTLE_GRACE = 0.25  # seconds from the socket's end of a prompt to its `executing` null, else poll anyway
UNKNOWN_LIMIT = 3  # polls in a row that find the prompt nowhere before giving up on it



class Follow:
    """The wait for one submitted prompt: socket news, polls of /queue + /history, the stop."""

    def __init__(self, native: NativeClient, prompt_id: str, socket: TaskSocket | None, *, state: str,
                 policy: PollPolicy, on_status: Callable[[RunStatus], None] | None, record: NativeRecord,
                 reattached: bool, clock: Callable[[], float] = time.monotonic, heard_from_start: bool = False,
                 needed_outputs: frozenset[str] | None = None):
        self.native, self.prompt_id, self.socket = native, prompt_id, socket
        self.heard_from_start, self.needed_outputs = heard_from_start, needed_outputs
        self.policy, self.on_status, self.record, self.reattached = policy, on_status, record, reattached
        self.clock = clock
        self.started = self.phase_started = clock()
        self.state = state if state in ("QUEUED", "RUNNING") else "QUEUED"
        self.interval: float | None = None
        self.last_report = float("-inf")
        self.failures = 0
        self.unknown = 0
        self.trouble: str | None = None
        self.ended_seen = False  # the socket said the prompt ended (execution_success / _error / ...)
        self.ended_at = 0.0
        self.settled_seen = False  # ... and that its history is written (`executing` null)
        self.grace_over = False
        self.heard: dict | None = None  # the outcome as the socket heard it (heard_outcome), once judged whole

    # -- what the node shows --------------------------------------------------------------

    def remote(self) -> RemoteProgress | None:
        progress = self.socket.progress if self.socket is not None else None
        return progress if progress is not None and progress.messages else None

    def status(self, state: str | None = None, line: str | None = None) -> RunStatus:
        now = self.clock()
        state = state or self.state
        word = STATE_WORDS.get(state, state.lower())
        remote = self.remote()
        text = line or (f"RunningHub prompt {self.prompt_id[:8]}: {word}, {now - self.phase_started:.0f} s "
                        f"({now - self.started:.0f} s in all)")
        if line is None and remote is not None and state in ("QUEUED", "RUNNING") and remote.describe():
            text += f" - {remote.describe()}"
        if line is None and self.trouble:
            text += " - RunningHub not answering, still waiting"
        return RunStatus(state=state, line=text, task_id=self.prompt_id, elapsed=round(now - self.started, 1),
                         phase_elapsed=round(now - self.phase_started, 1), remote=remote)

    def report(self, force: bool = False, **kw: Any) -> None:
        now = self.clock()
        if self.on_status is not None and (force or now - self.last_report >= self.policy.progress_every):
            self.last_report = now
            self.on_status(self.status(**kw))

    def move(self, state: str) -> None:
        if state != self.state:
            log.debug("prompt %s: %s -> %s", self.prompt_id, self.state, state)
            self.state, self.phase_started, self.interval = state, self.clock(), None
            self.record.moved(state)
            self.report(force=True)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> NativePromptResult:
        self.report(force=True)
        while True:
            self.wait_for_next_poll()
            lookup = self.poll()
            if lookup is not None:
                result = self.take(lookup)
                if result is not None:
                    return result
            self.check_budget()

    def socket_healthy(self) -> bool:
        return self.socket is not None and self.socket.healthy

    def heard_outcome(self) -> dict | None:
        """The prompt's success as its socket heard it, as a history entry, when the socket
        can stand for the history (see the module's doc); else None."""
        if not self.heard_from_start or self.needed_outputs is None or self.socket is None:
            return None
        outputs = self.socket.heard_success(self.prompt_id)
        if outputs is None or not self.needed_outputs <= outputs.keys():
            return None
        return {"outputs": outputs, "status": {"status_str": "success", "completed": True, "messages": [],
                                               "heard_on_socket": True}}

    def socket_says_ended(self) -> bool:
        """True once when the outcome is known: at once when the socket heard the whole
        success (`heard_outcome`), else when the prompt's history should be there: at
        ComfyUI's `executing` null (sent after the history is written; `execution_success`
        comes before it, when a poll would often still find the prompt running), or
        SETTLE_GRACE after the end message when that never comes (a remote that does not
        send it)."""
        remote = self.remote()
        if remote is None or remote.ended is None:
            return False
        if not self.ended_seen and (heard := self.heard_outcome()) is not None:
            self.heard = heard
            self.ended_seen = self.settled_seen = True
            self.ended_at = self.clock()
            return True
        if not self.ended_seen:
            self.ended_seen, self.ended_at = True, self.clock()
        if remote.settled:
            if self.settled_seen:
                return False
            self.settled_seen = True
            return True
        if not self.grace_over and self.clock() - self.ended_at >= SETTLE_GRACE:
            self.grace_over = True
            return True
        return False

    def next_interval(self) -> float:
        if self.failures:
            return self.policy.outage.delay(self.failures)
        if self.ended_seen:  # the socket said it ended: its history is due any moment
            return self.policy.near_interval
        self.interval = self.policy.next_interval(self.clock() - self.phase_started, self.interval)
        return self.interval

    def wait_for_next_poll(self) -> None:
        since, interval = self.clock(), self.next_interval()
        while True:
            if stop_requested():
                stopped = self.cancel()
                self.report(force=True, state="CANCEL", line=str(stopped))
                raise stopped
            if self.socket_says_ended():
                return
            remote = self.remote()
            if remote is not None and remote.node_id is not None and self.state == "QUEUED":
                self.move("RUNNING")
            if self.ended_seen and not self.settled_seen and not self.grace_over:
                remaining = self.ended_at + SETTLE_GRACE - self.clock() + 0.001  # until `executing` null
            else:
                due = max(interval, self.policy.heartbeat) if self.socket_healthy() and not self.failures else interval
                remaining = since + due - self.clock()
                if remaining <= 0:
                    return
            step = min(self.policy.tick, max(remaining, 0.001))
            if self.socket is not None:
                if self.socket.wait_for_news(step) and self.clock() - self.last_report >= self.policy.remote_every:
                    self.report(force=True)
            else:
                time.sleep(step)
            self.report()

    def lookup(self) -> Lookup:
        """Where the prompt is. Once the socket said it ended, its history is asked first:
        one request instead of /queue + /history (the queue only when it is not there yet)."""
        if self.heard is not None:
            return Lookup(Place.DONE, self.heard)
        if self.ended_seen:
            entry = self.native.history(self.prompt_id)
            if entry is not None:
                return Lookup(Place.DONE, entry)
        return self.native.find(self.prompt_id)

    def poll(self) -> Lookup | None:
        try:
            lookup = self.lookup()
        except WaitInterrupted:
            stopped = self.cancel()
            self.report(force=True, state="CANCEL", line=str(stopped))
            raise stopped from None
        except ProtocolError:
            raise
        except (TransportError, ServerError) as exc:
            self.failures += 1
            self.trouble = str(exc)
            log.warning("prompt %s: poll failed (%s); the wait goes on", self.prompt_id, exc)
            self.report(force=self.failures == 1)
            return None
        self.failures, self.trouble = 0, None
        return lookup

    def take(self, lookup: Lookup) -> NativePromptResult | None:
        if lookup.place is Place.DONE:
            try:
                result = decide(self.native, self.prompt_id, lookup.history or {}, elapsed=self.clock() - self.started,
                                reattached=self.reattached)
            except TaskCancelledError:
                self.report(force=True, state="CANCEL")
                raise
            except TaskFailedError:
                self.report(force=True, state="FAILED")
                raise
            self.report(force=True, state="SUCCESS", line=f"RunningHub prompt {self.prompt_id[:8]}: done in "
                                                          f"{self.clock() - self.started:.0f} s")
            log.info("prompt %s finished after %.1f s%s", self.prompt_id, self.clock() - self.started,
                     " (outcome heard on its socket)" if (lookup.history or {}).get("status", {}).get(
                         "heard_on_socket") else "")
            return result
        if lookup.place is Place.UNKNOWN:
            cancelled = self.record.cancelled_elsewhere()
            if cancelled is not None:  # the task panel took it off the remote queue: gone, not lost
                self.report(force=True, state="CANCEL")
                raise TaskCancelledError(f"RunningHub prompt {self.prompt_id} was taken off the remote queue before "
                                         f"it ran: {cancelled.message or 'cancelled'}",
                                         reason=FailureReason(raw_message="cancelled"), task_id=self.prompt_id,
                                         site=self.native.site.name)
            self.unknown += 1
            if self.unknown >= UNKNOWN_LIMIT:
                raise TaskNotFoundError(f"RunningHub's ComfyUI ({self.native.site.host}) no longer knows prompt "
                                        f"{self.prompt_id}: it is in neither its queue nor its history (the remote "
                                        "may have restarted). Queue again to run it anew.",
                                        task_id=self.prompt_id, site=self.native.site.name)
            return None
        self.unknown = 0
        self.move(lookup.place.value)
        return None

    def check_budget(self) -> None:
        budget = self.policy.max_queued_seconds if self.state == "QUEUED" else self.policy.max_running_seconds
        if self.clock() - self.phase_started > budget:
            raise TaskTimeoutError(f"RunningHub prompt {self.prompt_id} stayed {self.state.lower()} for more than "
                                   f"{budget:.0f} s (the wait limit); it was left as it is. Queue the same graph "
                                   "again to re-attach to it.", task_id=self.prompt_id, site=self.native.site.name)

    # -- cancel -----------------------------------------------------------------------------

    def cancel(self) -> WaitInterrupted:
        """The run stopped: stop the prompt (`stop_prompt`), or leave it running at a
        shutdown that says so."""
        if tasks_left_running():
            log.warning("shutting down: native prompt %s left running (queue the same graph again to re-attach)",
                        self.prompt_id)
            return WaitInterrupted(f"ComfyUI is shutting down; RunningHub prompt {self.prompt_id} was left running.",
                                   task_id=self.prompt_id, site=self.native.site.name)
        try:
            done = stop_prompt(self.native, self.prompt_id, assumed=Place(self.state))
        except RunningHubError as exc:
            log.warning("cancel of prompt %s failed: %s", self.prompt_id, exc)
            return WaitInterrupted(f"Interrupted. Stopping RunningHub prompt {self.prompt_id} failed ({exc}); it may "
                                   f"run on and bill on {self.native.site.host}. The task panel keeps it (cancel it "
                                   "there), and queueing the same graph again re-attaches to it instead of sending "
                                   "another.", task_id=self.prompt_id, site=self.native.site.name)
        return WaitInterrupted(f"Interrupted; {done.text}", cancelled=done.stopped, task_id=self.prompt_id,
                               site=self.native.site.name)
