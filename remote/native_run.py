"""Run an API-format prompt on RunningHub's native ComfyUI endpoint (client/native.py) and
wait for it, with the guarantees of a workflow run (remote/run.py):

- **Recorded before it is sent.** The prompt id is chosen here (a uuid4) and written to the
  task ledger (kind "native", task id = prompt id) before `POST /prompt`. A lost reply is
  resolved by looking that id up (client/native.py), never by sending again; a submission
  that stays uncertain leaves the entry MAY_EXIST *with its prompt id*, so the next run asks
  the remote about it instead of guessing.
- **Re-attach by fingerprint** (the prompt, the caller's `fingerprint_parts`, account, seed,
  list item): a prompt still queued or running is followed again, one that finished is
  reused from the ledger (nothing billed); a failed, cancelled or forgotten one makes a new
  prompt.
- **One key slot per prompt** through the key pool (client/pool.py): a 429 ("too many
  prompts": nothing was queued) is waited out there, on another key when one is free.
- **Progress from the /ws** of a client id of its own (client/task_socket.py, opened before
  the submission so no message is missed): the executing remote node (id and class from
  the prompt), its steps, nodes done / total, as `RunStatus` (remote/status.py). The socket
  never decides the outcome: `/history` does (`status_str`, the `execution_error` message
  naming the remote node and its exception). The end is read with one `/history` call
  when the socket says the history is written (ComfyUI's `executing` null, which follows
  `execution_success`; SETTLE_GRACE after the latter when it never comes). When the socket
  is silent or dropped, `/queue` + `/history` are polled on the workflow runs' schedule
  (client/polling.PollPolicy). `EarlySocket` lets a caller choose the prompt id and open
  its socket before the prompt is ready (while its inputs encode and upload), and hear of
  output nodes that ran (`executed`) to fetch their files before the history is read.
- **Cancel** (the run's stop, client/stop.py): exactly one remote interrupt when the prompt
  runs, a queue delete when it is still queued, nothing when it already ended.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from ..client.errors import (ProtocolError, RunningHubError, ServerError, SubmissionUncertainError,
                             TaskCancelledError, TaskFailedError, TaskNotFoundError, TaskTimeoutError,
                             TransportError, WaitInterrupted, FailureReason)
from ..client.inflight import IN_FLIGHT
from ..client.ledger import MAY_EXIST, SUBMITTING, LedgerEntry, RunFingerprint
from ..client.native import FileRef, Lookup, NativeClient, Place
from ..client.polling import PollPolicy
from ..client.pool import KeyPool
from ..client.redact import scrub
from ..client.remote_progress import RemoteProgress
from ..client.stop import shielded, stop_requested, stop_when, tasks_left_running
from ..client.task_socket import TaskSocket
from .reattach import LedgerRun, RunJournal, may_exist_error
from .status import STATE_WORDS, RunStatus

log = logging.getLogger("runninghub_bridge.remote")

KIND = "native"
SOCKET_WAIT = 2.0  # seconds to wait for the /ws before submitting (then poll instead)
SETTLE_GRACE = 0.25  # seconds from the socket's end of a prompt to its `executing` null, else poll anyway
UNKNOWN_LIMIT = 3  # polls in a row that find the prompt nowhere before giving up on it
MAX_TRACEBACK_LINES = 6
_shared: dict[tuple[str, str], NativeClient] = {}
_shared_lock = threading.Lock()


@dataclass(frozen=True)
class NativePromptResult:
    """A prompt that ended with success. `outputs` is its /history `outputs` dict
    (`{node_id: {"images": [{filename, subfolder, type}], "text": [...]}}`); download a file
    with `native.download(file_ref)`: `native` is the client of the key that ran it."""

    prompt_id: str
    outputs: dict
    native: NativeClient
    status: dict | None = None  # the history's status (status_str, completed, messages)
    reattached: bool = False  # an earlier run's prompt (followed again or reused): nothing new billed
    elapsed: float = 0.0

    def files(self, node_id: str | None = None) -> list[FileRef]:
        """Every file reference of the outputs (of one node), in order."""
        found = []
        for nid, output in self.outputs.items():
            if node_id is not None and str(nid) != str(node_id) or not isinstance(output, dict):
                continue
            for items in output.values():
                for item in items if isinstance(items, list) else ():
                    try:
                        found.append(FileRef.parse(item))
                    except ValueError:
                        continue
        return found


def new_prompt_id() -> str:
    """A uuid4 with its dashes (32 bare hex characters would look like a key to the scrub)."""
    return str(uuid.uuid4())


def client_id_for(prompt_id: str) -> str:
    """The /ws client id of a prompt: derived from it, so a re-attach after a restart
    listens on the same client."""
    return f"rh-native-{prompt_id}"


def shared_native(client: Any) -> NativeClient:
    """The native client of a pool key's client (one per site and key in this process)."""
    if isinstance(client, NativeClient):
        return client
    ident = (client.site.base_url, hashlib.sha256(client.key.secret.encode()).hexdigest())
    with _shared_lock:
        native = _shared.get(ident)
        if native is None:
            native = _shared[ident] = NativeClient(client.site, client.key)
        return native


def fingerprint_for(site_url: str, journal: RunJournal, prompt: Mapping[str, Any],
                    parts: Mapping[str, Any] | None) -> RunFingerprint:
    """What makes two native runs the same: the caller's `parts` when given (it knows what
    matters: e.g. the prompt with uploads named by content hash, whatever the remote named
    them), else the prompt itself; plus account, seed and list item."""
    basis = {"parts": dict(parts)} if parts else {"prompt": prompt}
    canonical = json.dumps(basis, sort_keys=True, ensure_ascii=True, default=repr)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]  # not 32: that would look like a key
    return RunFingerprint.of(site=site_url, account=journal.account, kind=KIND, workflow_id=f"prompt {digest}",
                             instance_type=KIND, overrides=(), seed=journal.seed, run_index=journal.run_index)


# -- the ledger's record of one native run -----------------------------------------------------

def outputs_for_ledger(outputs: Mapping[str, Any]) -> list[dict]:
    """History outputs as the ledger's output list (the task panel's shape: url, file_type,
    node_id), each item keeping what rebuilds the dict (`output_from_ledger`)."""
    items = []
    for node_id, output in (outputs or {}).items():
        if not isinstance(output, Mapping):
            continue
        for name, values in output.items():
            for value in values if isinstance(values, list) else [values]:
                file_type = ""
                if isinstance(value, Mapping) and isinstance(value.get("filename"), str):
                    file_type = value["filename"].rsplit(".", 1)[-1].lower() if "." in value["filename"] else ""
                items.append({"url": None, "file_type": file_type or name, "node_id": str(node_id), "output": name,
                              "value": value, "whole": not isinstance(values, list)})
    return items


def outputs_from_ledger(text: str | None) -> dict:
    outputs: dict[str, dict] = {}
    for item in json.loads(text or "[]"):
        if not isinstance(item, dict) or "output" not in item:
            continue
        node = outputs.setdefault(str(item.get("node_id")), {})
        if item.get("whole"):
            node[item["output"]] = item.get("value")
        else:
            node.setdefault(item["output"], []).append(item.get("value"))
    return outputs


class _Record:
    """One native run's ledger entry (no-ops without a journal)."""

    def __init__(self, journal: RunJournal | None, fingerprint: RunFingerprint | None):
        self.journal = journal
        self.ledger = journal.ledger if journal is not None else None
        self.run = LedgerRun(journal, fingerprint) if journal is not None and fingerprint is not None else None
        self.entry: int | None = None

    def turn(self, should_stop):
        if self.run is None:
            return nullcontext()
        return self.run.turn(should_stop)

    def earlier(self) -> LedgerEntry | None:
        if self.run is None:
            return None
        found = self.ledger.lookup(self.run.fingerprint)
        if found is None:
            return None
        if found.status in (MAY_EXIST, SUBMITTING) and not found.task_id:
            raise may_exist_error(found)
        self.entry = found.entry
        log.info("re-attaching to native prompt %s (%s, entry %d of the task ledger) instead of sending a new one",
                 found.task_id, found.status.lower(), found.entry)
        return found

    def begin(self, key_hint: str, prompt_id: str) -> None:
        if self.ledger is not None:
            self.entry = self.ledger.begin(self.run.fingerprint, key_hint=key_hint, prompt_id=self.journal.prompt_id,
                                           node_id=self.journal.node_id, task_id=prompt_id)

    def created(self, prompt_id: str, state: str = "QUEUED") -> None:
        if self.entry is not None:
            self.ledger.created(self.entry, prompt_id, state)

    def moved(self, state: str) -> None:
        if self.entry is not None:
            self.ledger.moved(self.entry, state)

    def uncertain(self, message: str) -> None:
        if self.entry is not None:
            self.ledger.uncertain(self.entry, message)

    def forget(self) -> None:
        if self.entry is not None:
            self.ledger.forget(self.entry)
            self.entry = None

    def cancelled_elsewhere(self) -> LedgerEntry | None:
        """The entry, when something else (the task panel's Cancel) has finished it as CANCEL."""
        if self.entry is None:
            return None
        found = self.ledger.get(self.entry)
        return found if found is not None and found.status == "CANCEL" else None

    def finished(self, status: str, *, outputs: Mapping[str, Any] | None = None, message: str = "") -> None:
        if self.entry is not None:
            self.ledger.finished(self.entry, status, message=message,
                                 outputs=outputs_for_ledger(outputs) if outputs is not None else None)

    def outcome(self, wait: Callable[[], NativePromptResult]) -> NativePromptResult:
        """`wait()`, recording how it ended; a wait that ended without an answer (an outage,
        a time budget, a shutdown that leaves prompts running) leaves the entry as it was."""
        try:
            result = wait()
        except TaskCancelledError as exc:
            self.finished("CANCEL", message=str(exc))
            raise
        except (TaskFailedError, TaskNotFoundError) as exc:
            self.finished("FAILED", message=str(exc))
            raise
        except WaitInterrupted as exc:
            if not tasks_left_running():
                self.finished("CANCEL", message=str(exc))
            raise
        self.finished("SUCCESS", outputs=result.outputs)
        return result


# -- deciding from /history ------------------------------------------------------------------

def _messages(history: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    status = history.get("status") if isinstance(history.get("status"), Mapping) else {}
    for item in status.get("messages") or ():
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], Mapping):
            yield str(item[0]), dict(item[1])


def failure_reason(data: Mapping[str, Any]) -> FailureReason:
    """ComfyUI's `execution_error` payload as the pack's FailureReason (scrubbed, capped)."""
    tb = data.get("traceback")
    lines = [str(x).rstrip() for x in tb] if isinstance(tb, list) else str(tb or "").splitlines()
    tail = [scrub(line) for line in "\n".join(lines).splitlines() if line.strip()][-MAX_TRACEBACK_LINES:]

    def text(name: str, cap: int = 500) -> str | None:
        value = data.get(name)
        return scrub(str(value)).strip()[:cap] or None if value is not None else None

    return FailureReason(node_id=text("node_id", 64), node_name=text("node_type", 80),
                         exception_type=text("exception_type", 120), exception_message=text("exception_message"),
                         traceback_tail=tail)


def decide(native: NativeClient, prompt_id: str, history: Mapping[str, Any], *, elapsed: float = 0.0,
           reattached: bool = False) -> NativePromptResult:
    """The result of a finished prompt, or TaskFailedError naming the remote node and its
    exception, or TaskCancelledError when it was interrupted."""
    status = history.get("status") if isinstance(history.get("status"), Mapping) else {}
    messages = dict(_messages(history))
    site = native.site.name
    if "execution_error" in messages:
        reason = failure_reason(messages["execution_error"])
        message = f"RunningHub prompt {prompt_id} failed at {reason.describe()}"
        if reason.traceback_tail:
            message += "\nRemote traceback (last lines):\n" + "\n".join(reason.traceback_tail)
        raise TaskFailedError(message, reason=reason, task_id=prompt_id, site=site)
    if "execution_interrupted" in messages:
        data = messages["execution_interrupted"]
        where = f" at remote node {data.get('node_id')} ({data.get('node_type')})" if data.get("node_id") else ""
        raise TaskCancelledError(f"RunningHub prompt {prompt_id} was interrupted{scrub(where)}.",
                                 reason=FailureReason(raw_message="interrupted"), task_id=prompt_id, site=site)
    status_str = str(status.get("status_str") or ("success" if status.get("completed", True) else "error"))
    if status_str != "success":
        raise TaskFailedError(f"RunningHub prompt {prompt_id} ended with status {scrub(status_str)!r} and no error "
                              "message.", reason=FailureReason(raw_message=status_str), task_id=prompt_id, site=site)
    outputs = history.get("outputs") if isinstance(history.get("outputs"), dict) else {}
    return NativePromptResult(prompt_id, outputs, native, status=dict(status), reattached=reattached,
                              elapsed=elapsed)


# -- following one prompt ----------------------------------------------------------------------

class _Follow:
    """The wait for one submitted prompt: socket news, polls of /queue + /history, the stop."""

    def __init__(self, native: NativeClient, prompt_id: str, socket: TaskSocket | None, *, state: str,
                 policy: PollPolicy, on_status: Callable[[RunStatus], None] | None, record: _Record,
                 reattached: bool, clock: Callable[[], float] = time.monotonic):
        self.native, self.prompt_id, self.socket = native, prompt_id, socket
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

    def socket_says_ended(self) -> bool:
        """True once when the prompt's history should be there: at ComfyUI's `executing`
        null (sent after the history is written; `execution_success` comes before it, when
        a poll would often still find the prompt running), or SETTLE_GRACE after the end
        message when that never comes (a remote that does not send it)."""
        remote = self.remote()
        if remote is None or remote.ended is None:
            return False
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
            log.info("prompt %s finished after %.1f s", self.prompt_id, self.clock() - self.started)
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
            text = stop_prompt(self.native, self.prompt_id, assumed=Place(self.state))
        except RunningHubError as exc:
            log.warning("cancel of prompt %s failed: %s", self.prompt_id, exc)
            return WaitInterrupted(f"Interrupted. Stopping RunningHub prompt {self.prompt_id} failed ({exc}); it may "
                                   f"run on and bill: check {self.native.site.host}.", task_id=self.prompt_id,
                                   site=self.native.site.name)
        return WaitInterrupted(f"Interrupted; {text}", task_id=self.prompt_id, site=self.native.site.name)


def stop_prompt(native: NativeClient, prompt_id: str, *, assumed: Place = Place.RUNNING) -> str:
    """Stop one prompt with as few calls as it takes: one interrupt when it runs, one queue
    delete when it is still queued (and the interrupt after all when it started meanwhile),
    nothing when it already ended. `assumed` is where it is when the remote cannot say.
    Returns what was done, as text; RunningHubError when a call failed. Not stopped by the
    run's stop (the task panel's cancel can use it too)."""
    with shielded():
        try:
            place = native.find(prompt_id).place
        except RunningHubError as exc:
            log.info("prompt %s: where it is is unknown (%s); stopping it as %s", prompt_id, type(exc).__name__,
                     assumed.value.lower())
            place = assumed
        if place is Place.QUEUED:
            native.delete(prompt_id)
            try:
                place = native.find(prompt_id).place  # it may have started meanwhile
            except RunningHubError:
                place = Place.UNKNOWN
            if place is not Place.RUNNING:
                return f"RunningHub prompt {prompt_id} was taken off the remote queue before it ran."
        if place is Place.RUNNING:
            native.interrupt(prompt_id)
            return f"RunningHub prompt {prompt_id} was interrupted on the remote ComfyUI."
    return f"RunningHub prompt {prompt_id} had already ended."


# -- the run -------------------------------------------------------------------------------------

@dataclass
class _Started:
    """What `pool.submit` hands back: `task_id` lets the pool remember the prompt's key."""

    native: NativeClient
    task_id: str
    socket: TaskSocket | None
    state: str


class EarlySocket:
    """A new prompt's id, chosen early, with its /ws opened early: while the prompt's inputs
    encode and upload (nodes/remote_group.py), so that the socket's connect (a TLS handshake
    away on the real service) is not waited for after them. `run_prompt(..., early=...)` submits under
    that id and follows that socket when the prompt goes to the same key; any other way the
    run goes (re-attach, another key of a pool, an error) closes it. Close it in a
    `finally` (or use it as a context manager): closing a socket handed on is a no-op."""

    def __init__(self, native: NativeClient | None, prompt_id: str, socket: TaskSocket | None):
        self.native, self.prompt_id, self.socket = native, prompt_id, socket
        self._lock = threading.Lock()

    @classmethod
    def open(cls, native: NativeClient, prompt: Mapping[str, Any] | None = None, *,
             on_executed: Callable[[str, dict], None] | None = None) -> "EarlySocket":
        """`prompt` names the remote nodes in the progress (its ids and classes are enough).
        `on_executed(node_id, output)`: the remote's `executed` messages of this prompt (its
        output's file references, before the history has them), in the socket's thread."""
        prompt_id = new_prompt_id()

        def listener(msg: dict) -> None:
            data = msg.get("data")
            if msg.get("type") == "executed" and isinstance(data, dict) and data.get("prompt_id") == prompt_id \
                    and isinstance(data.get("output"), dict) and data.get("node") is not None:
                on_executed(str(data["node"]), data["output"])
        socket = native.open_socket(client_id_for(prompt_id), prompt, label=f"native prompt {prompt_id}",
                                    on_message=listener if on_executed is not None else None)
        return cls(native, prompt_id, socket)

    def name_nodes(self, prompt: Mapping[str, Any]) -> None:
        """The prompt as it will be sent (when it was not known at `open`)."""
        socket = self.socket
        if socket is not None:
            socket.set_workflow(prompt)

    def take(self, native: NativeClient) -> TaskSocket | None:
        """The socket, handed on once, when `native` is the client it was opened with."""
        with self._lock:
            socket, self.socket = self.socket, None
        if socket is not None and native is not self.native:
            socket.close()
            return None
        return socket

    def close(self) -> None:
        with self._lock:
            socket, self.socket = self.socket, None
        _close(socket)

    def __enter__(self) -> "EarlySocket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_prompt(native: NativeClient | KeyPool, prompt: Mapping[str, Any], *,
               fingerprint_parts: Mapping[str, Any] | None = None, journal: RunJournal | None = None,
               should_stop: Callable[[], bool] | None = None,
               on_status: Callable[[RunStatus], None] | None = None,
               on_submitted: Callable[[str], None] | None = None,
               on_wait: Callable[[str], None] | None = None,
               on_warning: Callable[[str], None] | None = None,
               policy: PollPolicy | None = None, capacity_budget: float = 600.0,
               socket_wait: float = SOCKET_WAIT, early: EarlySocket | None = None) -> NativePromptResult:
    """Run `prompt` (API format) on the native endpoint of `native` (a client, or a key pool
    whose keys' clients `shared_native` turns into native clients) and wait for its end.

    Returns NativePromptResult on success. Raises ValidationFailedError (the remote refused
    the prompt: nothing queued), TaskFailedError (naming the remote node and exception),
    TaskCancelledError (interrupted remotely), WaitInterrupted (stopped: after one
    interrupt or queue delete), TaskTimeoutError (left running), SubmissionUncertainError
    (the submission's fate is unknown: not resent), TaskMayExistError, CapacityError
    (the pool's budget of 429s ran out), AuthError / InsufficientFundsError.

    `on_status(RunStatus)` sees SUBMITTING, QUEUED, RUNNING (with the remote node and its
    steps), then SUCCESS, FAILED or CANCEL; `on_submitted(prompt_id)` once it is queued.
    With a `journal` the prompt is kept in the task ledger and re-attached by fingerprint.
    `early`: a prompt id and /ws opened before (EarlySocket); closed here when not used."""
    try:
        return _run_prompt(native, prompt, fingerprint_parts=fingerprint_parts, journal=journal,
                           should_stop=should_stop, on_status=on_status, on_submitted=on_submitted, on_wait=on_wait,
                           on_warning=on_warning, policy=policy, capacity_budget=capacity_budget,
                           socket_wait=socket_wait, early=early)
    finally:
        if early is not None:
            early.close()


def _run_prompt(native: NativeClient | KeyPool, prompt: Mapping[str, Any], *,
                fingerprint_parts: Mapping[str, Any] | None, journal: RunJournal | None,
                should_stop: Callable[[], bool] | None, on_status: Callable[[RunStatus], None] | None,
                on_submitted: Callable[[str], None] | None, on_wait: Callable[[str], None] | None,
                on_warning: Callable[[str], None] | None, policy: PollPolicy | None, capacity_budget: float,
                socket_wait: float, early: EarlySocket | None) -> NativePromptResult:
    if not isinstance(prompt, Mapping) or not prompt:
        raise RunningHubError("The remote prompt is empty: there is nothing to run on RunningHub.")
    prompt = dict(prompt)
    pool = native if isinstance(native, KeyPool) else KeyPool(native.site, [native.key],
                                                                 client_factory=lambda _key: native)
    policy = policy or PollPolicy()
    fingerprint = fingerprint_for(pool.site.base_url, journal, prompt, fingerprint_parts) if journal else None
    record = _Record(journal, fingerprint)

    def tell(state: str, line: str, prompt_id: str | None = None) -> None:
        if on_status is not None:
            on_status(RunStatus(state=state, line=line, task_id=prompt_id))

    def follow(started: _Started, *, reattached: bool) -> NativePromptResult:
        wait = _Follow(started.native, started.task_id, started.socket, state=started.state, policy=policy,
                       on_status=on_status, record=record, reattached=reattached)
        try:
            with IN_FLIGHT.on(f"native prompt {started.task_id} on {started.native.site.host}"):
                return record.outcome(wait.run)
        finally:
            if started.socket is not None:
                started.socket.close()

    with stop_when(should_stop):
        while True:
            with record.turn(should_stop):
                earlier = record.earlier()
                if earlier is None:
                    prompt_id = early.prompt_id if early is not None else new_prompt_id()
                    tell("SUBMITTING", f"RunningHub prompt {prompt_id[:8]}: sending", prompt_id)
                    create = _submitter(prompt, prompt_id, record, socket_wait, early)
                    lease, started = pool.submit(create, should_stop=should_stop, budget_seconds=capacity_budget,
                                                 on_wait=on_wait, on_warning=on_warning)
                    break
            if early is not None:
                early.close()  # the earlier prompt's own client id is followed instead
            result = _reattach(pool, earlier, record, follow, prompt)
            if result is not None:
                return result
        with lease:
            if on_submitted is not None:
                on_submitted(started.task_id)
            return follow(started, reattached=False)


def _submitter(prompt: dict, prompt_id: str, record: _Record, socket_wait: float,
               early: EarlySocket | None = None) -> Callable[[Any], _Started]:
    """`create(client)` for pool.submit: the /ws first (the early one when it is this
    client's), the ledger entry, then POST /prompt."""
    client_id = client_id_for(prompt_id)

    def create(client: Any) -> _Started:
        native = shared_native(client)
        socket = early.take(native) if early is not None else None
        if socket is None:
            socket = native.open_socket(client_id, prompt, label=f"native prompt {prompt_id}")
        if socket is not None and not socket.wait_connected(socket_wait):
            log.info("prompt %s: the remote /ws did not answer within %.1f s; polling instead", prompt_id,
                     socket_wait)
        record.begin(native.key.hint, prompt_id)
        try:
            submitted = native.submit(prompt, prompt_id, client_id)
        except (SubmissionUncertainError, ProtocolError) as exc:
            record.uncertain(str(exc))
            _close(socket)
            raise
        except RunningHubError:
            record.forget()  # refused, no capacity, never sent: nothing was queued
            _close(socket)
            raise
        except BaseException as exc:
            record.uncertain(f"{type(exc).__name__}: {scrub(str(exc))}"[:500])
            _close(socket)
            raise
        record.created(submitted.prompt_id)
        return _Started(native, submitted.prompt_id, socket, "QUEUED")

    return create


def _close(socket: TaskSocket | None) -> None:
    if socket is not None:
        socket.close()


def _owner(pool: KeyPool, entry: LedgerEntry) -> NativeClient:
    """The native client of the key that sent `entry`'s prompt: by its last 4, else the key
    whose remote knows the prompt, else the first key (whose answer then says unknown)."""
    clients = [shared_native(c) for c in pool.clients()]
    hinted = [c for c in clients if c.key.hint == entry.key_hint]
    if len(hinted) == 1 or len(clients) == 1:
        return (hinted or clients)[0]
    for candidate in clients:
        try:
            if candidate.find(entry.task_id).place is not Place.UNKNOWN:
                return candidate
        except RunningHubError:
            continue
    return clients[0]


def _reattach(pool: KeyPool, earlier: LedgerEntry, record: _Record, follow: Callable[..., NativePromptResult],
              prompt: Mapping[str, Any]) -> NativePromptResult | None:
    """An earlier run's prompt: reuse it (finished), follow it (queued or running), or None
    when a new prompt must be sent (it failed, was cancelled, or the remote forgot it)."""
    native = _owner(pool, earlier)
    prompt_id = str(earlier.task_id)
    if earlier.status == "SUCCESS":
        log.info("reusing the outputs of native prompt %s (finished earlier; nothing new billed)", prompt_id)
        return NativePromptResult(prompt_id, outputs_from_ledger(earlier.outputs), native,
                                  status={"status_str": "success", "completed": True}, reattached=True)
    lookup = native.find(prompt_id)  # an outage raises: better no run than a second bill
    if lookup.place is Place.UNKNOWN:
        log.warning("native prompt %s (ledger entry %d) is unknown to the remote; sending a new one", prompt_id,
                    earlier.entry)
        record.finished("FAILED", message="The remote ComfyUI does not know this prompt (never arrived, or "
                                          "forgotten); a new one was sent.")
        return None
    if earlier.status in (MAY_EXIST, SUBMITTING):
        record.created(prompt_id, lookup.place.value if lookup.place is not Place.DONE else "RUNNING")
    if lookup.place is Place.DONE:
        try:
            return record.outcome(lambda: decide(native, prompt_id, lookup.history or {}, reattached=True))
        except (TaskFailedError, TaskNotFoundError) as exc:
            log.info("native prompt %s had ended without success (%s); sending a new one", prompt_id,
                     type(exc).__name__)
            return None
    socket = native.open_socket(client_id_for(prompt_id), prompt, label=f"native prompt {prompt_id}")
    return follow(_Started(native, prompt_id, socket, lookup.place.value), reattached=True)
