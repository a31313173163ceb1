"""Re-attach instead of creating: one run's dealings with the task ledger (client/ledger.py).

remote/run.py asks `LedgerRun.earlier()` before it creates anything (during its `turn`). A run whose
fingerprint matches a task that is still queued or running, or finished with outputs not
yet expired, waits for or fetches that task instead of creating a new one. One whose
earlier create may have made a task (the reply was lost, or ComfyUI stopped mid-create)
fails with TaskMayExistError, telling the user how to check and how to go on on purpose.
Otherwise the create is recorded before it is sent (`recording`), every state change as
the task moves (`observe`), and how the wait ended (`outcome`).

`NOT_RECORDED` stands in when a run has no ledger (scripts, benchmarks): same calls, no
records.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, TypeVar

from ..client.errors import (ProtocolError, RunningHubError, SubmissionUncertainError, TaskCancelledError,
                             TaskFailedError, TaskNotFoundError, WaitInterrupted)
from ..client.ledger import (MAY_EXIST, SUBMITTING, WAITING, LedgerEntry, RunFingerprint, TaskLedger,
                            TaskMayExistError, written_for_existing_task)
from ..client import file_lock
from ..client.overrides import NodeOverride, merge_overrides
from ..client.polling import TaskProgress
from ..client.records import TaskHandle, TaskResult
from ..client.sites import Site
from . import followers

log = logging.getLogger("runninghub_bridge.remote")

T = TypeVar("T")
#: Replies of a create that may still have made a task: never forget those entries.
MAYBE_CREATED = (SubmissionUncertainError, ProtocolError)


@dataclass(frozen=True)
class RunJournal:
    """What the node knows that the fingerprint needs (account, seed, list item) and where
    the run came from (prompt, node), plus the ledger to write to."""

    ledger: TaskLedger
    account: str
    seed: int
    prompt_id: str | None = None
    node_id: str | None = None
    run_index: int = 0  # the list item of a list-mapped run

    def for_run(self, site: Site, kind: str, workflow_id: str, instance_type: str,
                overrides: Iterable[NodeOverride]) -> "LedgerRun":
        fingerprint = RunFingerprint.of(site=site.base_url, account=self.account, kind=kind, workflow_id=workflow_id,
                                        instance_type=instance_type, overrides=merge_overrides(overrides),
                                        seed=self.seed, run_index=self.run_index)
        return LedgerRun(self, fingerprint)


class LedgerRun:
    """One run's entry in the ledger, from the lookup to the end of its wait."""

    def __init__(self, journal: RunJournal, fingerprint: RunFingerprint, *, tick: float = 0.2):
        self.journal = journal
        self.ledger = journal.ledger
        self.fingerprint = fingerprint
        self.tick = tick
        self.entry: int | None = None
        self._unrecorded: TaskHandle | None = None  # created, but the ledger could not say so yet
        self.should_stop: Callable[[], bool] | None = None  # the run's stop, from `turn`

    @contextmanager
    def turn(self, should_stop: Callable[[], bool] | None = None) -> Iterator[None]:
        """Runs of one fingerprint (twin nodes, a re-queue while the first is still submitting,
        another ComfyUI on the same user folder) look up and create one at a time, so the
        second finds the first's task instead of creating its own. Hold it from `earlier()`
        until the create is recorded. In this process a lock per fingerprint; between
        processes a file lock beside the ledger (`TaskLedger.turn_lock_path`): while it is
        held, other processes read this run's SUBMITTING entry as it is, not as MAY_EXIST."""
        stopped = should_stop or (lambda: False)
        self.should_stop = should_stop
        turn = _turn_for(self.fingerprint.digest())
        try:
            while not turn.lock.acquire(timeout=self.tick):
                if stopped():
                    raise _waited_for_twin()
            try:
                with file_lock.held(self.ledger.turn_lock_path(self.fingerprint.digest()), gave_up=stopped):
                    yield
            except file_lock.GaveUp:
                raise _waited_for_twin() from None
            finally:
                turn.lock.release()
        finally:
            _turn_done(self.fingerprint.digest(), turn)

    def lookup(self) -> LedgerEntry | None:
        """The ledger's entry for this run (TaskLedger.lookup), looked up again once a stopped
        run of this process that follows it has finished its cancel (remote/followers.py)."""
        found = self.ledger.lookup(self.fingerprint)
        if found is not None and found.status in WAITING and followers.wait_if_stopping(
                self.ledger.path, found.entry, gave_up=self.should_stop or (lambda: False)):
            found = self.ledger.lookup(self.fingerprint)
        return found

    def follow(self, entry: int) -> None:
        """From now until `unfollow`, this run follows `entry` (remote/followers.py)."""
        followers.follow(self.ledger.path, entry, self.should_stop)

    def unfollow(self, entry: int | None) -> None:
        followers.unfollow(self.ledger.path, entry, self.should_stop)

    def earlier(self, *, known_id: bool = False, what: str = "RunningHub task") -> LedgerEntry | None:
        """The task to re-attach to, or None to create one (call it during your `turn`). An
        entry whose create may have gone out is the user's to decide (TaskMayExistError),
        unless `known_id`: the id was chosen before sending (a native prompt's), so the remote
        can be asked about it."""
        found = self.lookup()
        if found is None:
            return None
        if found.status in (MAY_EXIST, SUBMITTING) and not (known_id and found.task_id):
            raise may_exist_error(found)
        self.entry = found.entry
        self.follow(found.entry)
        log.info("re-attaching to %s %s (%s, entry %d of the task ledger) instead of creating a new one", what,
                 found.task_id, found.status.lower(), found.entry)
        return found

    def recording(self, create: Callable[..., TaskHandle]) -> Callable[..., TaskHandle]:
        """`create(client)`, recorded before it is sent and updated by how it ended."""

        def create_recorded(client) -> TaskHandle:
            journal = self.journal
            self.entry = self.ledger.begin(self.fingerprint, key_hint=client.key.hint, prompt_id=journal.prompt_id,
                                           node_id=journal.node_id)
            self.follow(self.entry)
            # the run holds its turn through the create, and unfollows in its own `finally`
            try:
                handle = create(client)
            except MAYBE_CREATED as exc:
                self.ledger.uncertain(self.entry, str(exc))
                raise
            except RunningHubError:
                self.ledger.forget(self.entry)  # refused, no capacity, never sent: nothing exists
                raise
            except BaseException as exc:  # anything unforeseen: the create may have gone out
                self.ledger.uncertain(self.entry, f"{type(exc).__name__}: {exc}"[:500])
                raise
            self._unrecorded = handle
            self._write(None)
            return handle

        return create_recorded

    def observe(self, on_progress: Callable[[TaskProgress], None] | None) -> Callable[[TaskProgress], None]:
        """`on_progress`, recording each state change on the way."""
        seen: list[str] = []

        def observed(progress: TaskProgress) -> None:
            state = progress.state.value
            if self.entry is not None and not progress.state.finished and seen[-1:] != [state]:
                seen.append(state)
                entry = self.entry
                self._write(lambda: self.ledger.moved(entry, state))
            if on_progress is not None:
                on_progress(progress)

        return observed

    def outcome(self, wait: Callable[[], TaskResult]) -> TaskResult:
        """`wait()`, recording how it ended. A wait that ended without an answer (a polling
        outage, a time budget, ComfyUI stopping) leaves the task as it was: the next run
        with the same fingerprint re-attaches to it."""
        try:
            result = recorded_end(wait, self._finish)
            self._finish("SUCCESS", result=result)
            return result
        finally:
            self.unfollow(self.entry)  # after the outcome is written: a waiting re-queue then reads it

    def _finish(self, status: str, *, result: TaskResult | None = None, message: str = "") -> None:
        if self.entry is not None:
            entry = self.entry
            self._write(lambda: self.ledger.finished(entry, status, result=result, message=message))

    def _write(self, write: Callable[[], object] | None) -> None:
        """A ledger write about the created task, after the create's own record if that could
        not be written at the time (a ledger locked or failing then): a failure is logged and
        the run goes on following its task. Until the create is recorded the entry stays as
        begun, so the same run again asks the user rather than creating a second task."""
        if self.entry is None:
            return
        handle, entry = self._unrecorded, self.entry
        if handle is not None:
            if not written_for_existing_task(lambda: self.ledger.created(entry, handle.task_id, handle.state.value),
                                             handle.task_id):
                return
            self._unrecorded = None
        if write is not None:
            written_for_existing_task(write, handle.task_id if handle is not None else None)


def _waited_for_twin() -> WaitInterrupted:
    return WaitInterrupted("Interrupted while another run with the same inputs and seed was submitting; nothing "
                           "was created by this one.")


class _Turn:
    def __init__(self):
        self.lock = threading.Lock()
        self.users = 0


_turns: dict[str, _Turn] = {}
_turns_lock = threading.Lock()


def _turn_for(digest: str) -> _Turn:
    with _turns_lock:
        turn = _turns.setdefault(digest, _Turn())
        turn.users += 1
        return turn


def _turn_done(digest: str, turn: _Turn) -> None:
    with _turns_lock:
        turn.users -= 1
        if turn.users == 0 and _turns.get(digest) is turn:
            del _turns[digest]


class _NotRecorded(LedgerRun):
    """A run without a ledger: nothing to find, nothing written."""

    def __init__(self):
        self.entry = None

    @contextmanager
    def turn(self, should_stop=None) -> Iterator[None]:
        yield

    def earlier(self) -> None:
        return None

    def unfollow(self, entry) -> None:
        pass

    def recording(self, create):
        return create

    def observe(self, on_progress):
        return on_progress

    def outcome(self, wait):
        return wait()


NOT_RECORDED = _NotRecorded()


def recorded_end(wait: Callable[[], T], finish: Callable[..., None]) -> T:
    """`wait()`; a definite end written with `finish(status, message=...)`: CANCEL (cancelled
    remotely, or by this run's stop), FAILED (the task failed, or RunningHub no longer knows
    it). A wait that ended without an answer (a failed cancel, a shutdown that leaves the task
    running, an outage) leaves the entry as it was: the next run re-attaches."""
    try:
        return wait()
    except TaskCancelledError as exc:
        finish("CANCEL", message=str(exc))
        raise
    except TaskFailedError as exc:
        finish("FAILED", message=str(exc))
        raise
    except TaskNotFoundError as exc:
        finish("FAILED", message=f"RunningHub does not know this task: {exc}")
        raise
    except WaitInterrupted as exc:
        if exc.cancelled:
            finish("CANCEL", message=str(exc))
        raise


def may_exist_error(found: LedgerEntry) -> TaskMayExistError:
    when = datetime.fromtimestamp(found.created_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    prompt = f" by prompt {found.prompt_id}" if found.prompt_id else ""
    return TaskMayExistError(
        f"RH Run Workflow: an earlier run with these same inputs and seed ({found.kind} {found.workflow_id}, "
        f"account '{found.account}', key {found.key_hint or '?'}, sent at {when}{prompt}) may have created a "
        f"billed RunningHub task, but its reply never arrived ({found.message or 'reply lost'}). Nothing new was "
        f"created. Check the task list on {_host(found.site)}: if the task is there, load it with RH Fetch "
        "Outputs (its task_id). To run again on purpose, change the seed, or clear entry "
        f"#{found.entry} in the RunningHub task panel (sidebar) and queue again.")


def _host(base_url: str) -> str:
    return base_url.split("://", 1)[-1].split("/", 1)[0] or base_url
