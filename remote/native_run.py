"""Run an API-format prompt on RunningHub's native ComfyUI endpoint (client/native.py) and
wait for it, with the guarantees of a workflow run (remote/run.py):

- **Recorded before it is sent.** The prompt id is chosen here (a uuid4) and written to the
  task ledger (remote/native_record.py) before `POST /prompt`. A lost reply is resolved by
  looking that id up (client/native.py), never by sending again; a submission that stays
  uncertain leaves the entry MAY_EXIST *with its prompt id*, so the next run asks the
  remote about it instead of guessing.
- **Re-attach by fingerprint** (the prompt, the caller's `fingerprint_parts`, account, seed,
  list item): a prompt still queued or running is followed again, one that finished is
  reused from the ledger (nothing billed); a failed, cancelled or forgotten one makes a new
  prompt.
- **One key slot per prompt** through the key pool (client/pool.py): a 429 ("too many
  prompts": nothing was queued) is waited out there, on another key when one is free.
- **Followed** (remote/native_follow.py) on the /ws of a client id of its own, opened before
  the submission (remote/native_socket.py; an EarlySocket even before the prompt is ready),
  to the outcome its `/history` gives (or, for a success, the socket itself when it heard
  every output the caller names in `needed_outputs`); **cancelled** by the run's stop with
  one interrupt or queue delete (remote/native_stop.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..client.errors import (ProtocolError, RunningHubError, SubmissionUncertainError, TaskFailedError,
                             TaskNotFoundError)
from ..client.inflight import IN_FLIGHT
from ..client.ledger import MAY_EXIST, SUBMITTING, LedgerEntry
from ..client.native import NativeClient, Place
from ..client.polling import PollPolicy
from ..client.pool import KeyPool
from ..client.redact import scrub
from ..client.stop import stop_when
from ..client.task_socket import TaskSocket
from .native_follow import Follow
from .native_record import NativeRecord, fingerprint_for, outputs_from_ledger
from .native_result import NativePromptResult, decide
from .native_shared import shared_native
from .native_socket import EarlySocket, client_id_for, close_socket, new_prompt_id
from .reattach import RunJournal
from .status import RunStatus

log = logging.getLogger("runninghub_bridge.remote")

SOCKET_WAIT = 2.0  # seconds to wait for the /ws before submitting (then poll instead)


@dataclass
class _Started:
    """What `pool.submit` hands back: `task_id` lets the pool remember the prompt's key."""

    native: NativeClient
    task_id: str
    socket: TaskSocket | None
    state: str
    heard_from_start: bool = False  # the socket was connected before the prompt was sent


def run_prompt(native: NativeClient | KeyPool, prompt: Mapping[str, Any], *,
               fingerprint_parts: Mapping[str, Any] | None = None, journal: RunJournal | None = None,
               should_stop: Callable[[], bool] | None = None,
               on_status: Callable[[RunStatus], None] | None = None,
               on_submitted: Callable[[str], None] | None = None,
               on_wait: Callable[[str], None] | None = None,
               on_warning: Callable[[str], None] | None = None,
               policy: PollPolicy | None = None, capacity_budget: float = 600.0,
               socket_wait: float = SOCKET_WAIT, early: EarlySocket | None = None,
               needed_outputs: Iterable[str] | None = None,
               ready: Callable[[], Mapping[str, Any]] | None = None,
               senders: Iterable[NativeClient] = ()) -> NativePromptResult:
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
    `early`: a prompt id and /ws opened before (EarlySocket); closed here when not used.
    `needed_outputs`: the remote node ids whose outputs the caller reads; given, a success
    the socket heard whole (those outputs included) is not read again from /history.
    `ready()`: the prompt to send, asked for once the ledger entry is written, right before
    `POST /prompt` (e.g. `prompt` with the names its files got from uploads that ran while
    the run was being recorded); `prompt` then names the nodes and makes the fingerprint. An
    error from it ends the run with nothing sent (the entry is dropped). `senders`: clients
    of other keys that may have sent an earlier run's prompt (the ledger names it by its
    last 4): a re-attach uses that key; a new prompt still goes with `native`."""
    try:
        return _run_prompt(native, prompt, fingerprint_parts=fingerprint_parts, journal=journal,
                           should_stop=should_stop, on_status=on_status, on_submitted=on_submitted, on_wait=on_wait,
                           on_warning=on_warning, policy=policy, capacity_budget=capacity_budget,
                           socket_wait=socket_wait, early=early, ready=ready, senders=tuple(senders),
                           needed=frozenset(map(str, needed_outputs)) if needed_outputs is not None else None)
    finally:
        if early is not None:
            early.close()


def _run_prompt(native: NativeClient | KeyPool, prompt: Mapping[str, Any], *,
                fingerprint_parts: Mapping[str, Any] | None, journal: RunJournal | None,
                should_stop: Callable[[], bool] | None, on_status: Callable[[RunStatus], None] | None,
                on_submitted: Callable[[str], None] | None, on_wait: Callable[[str], None] | None,
                on_warning: Callable[[str], None] | None, policy: PollPolicy | None, capacity_budget: float,
                socket_wait: float, early: EarlySocket | None, needed: frozenset[str] | None,
                ready: Callable[[], Mapping[str, Any]] | None,
                senders: tuple[NativeClient, ...] = ()) -> NativePromptResult:
    if not isinstance(prompt, Mapping) or not prompt:
        raise RunningHubError("The remote prompt is empty: there is nothing to run on RunningHub.")
    prompt = dict(prompt)
    pool = native if isinstance(native, KeyPool) else KeyPool(native.site, [native.key],
                                                                 client_factory=lambda _key: native)
    policy = policy or PollPolicy()
    fingerprint = fingerprint_for(pool.site.base_url, journal, prompt, fingerprint_parts) if journal else None
    record = NativeRecord(journal, fingerprint)

    def tell(state: str, line: str, prompt_id: str | None = None) -> None:
        if on_status is not None:
            on_status(RunStatus(state=state, line=line, task_id=prompt_id))

    def follow(started: _Started, *, reattached: bool) -> NativePromptResult:
        wait = Follow(started.native, started.task_id, started.socket, state=started.state, policy=policy,
                       on_status=on_status, record=record, reattached=reattached,
                       heard_from_start=started.heard_from_start, needed_outputs=needed)
        try:
            with IN_FLIGHT.on(f"native prompt {started.task_id} on {started.native.site.host}"):
                return record.outcome(wait.run)
        finally:
            if started.socket is not None:
                started.socket.close(wait=False)  # it winds down off the run's path

    with stop_when(should_stop):
        try:
            while True:
                with record.turn(should_stop):
                    earlier = record.earlier()
                    if earlier is None:
                        prompt_id = early.prompt_id if early is not None else new_prompt_id()
                        tell("SUBMITTING", f"RunningHub prompt {prompt_id[:8]}: sending", prompt_id)
                        create = _submitter(prompt, prompt_id, record, socket_wait, early, ready)
                        lease, started = pool.submit(create, should_stop=should_stop,
                                                     budget_seconds=capacity_budget, on_wait=on_wait,
                                                     on_warning=on_warning)
                        break
                if early is not None:
                    early.close()  # the earlier prompt's own client id is followed instead
                result = _reattach(pool, earlier, record, follow, prompt, senders)
                if result is not None:
                    return result
            with lease:
                if on_submitted is not None:
                    on_submitted(started.task_id)
                return follow(started, reattached=False)
        finally:
            record.unfollow()  # the follow's outcome does it; this covers an error before it


def _submitter(prompt: dict, prompt_id: str, record: NativeRecord, socket_wait: float,
               early: EarlySocket | None = None,
               ready: Callable[[], Mapping[str, Any]] | None = None) -> Callable[[Any], _Started]:
    """`create(client)` for pool.submit: the /ws first (the early one when it is this
    client's), the ledger entry, the prompt to send (`ready`), then POST /prompt."""
    client_id = client_id_for(prompt_id)

    def create(client: Any) -> _Started:
        native = shared_native(client)
        socket = early.take(native) if early is not None else None
        if socket is None:
            socket = native.open_socket(client_id, prompt, label=f"native prompt {prompt_id}")
        connected = socket is not None and socket.wait_connected(socket_wait)
        if socket is not None and not connected:
            log.info("prompt %s: the remote /ws did not answer within %.1f s; polling instead", prompt_id,
                     socket_wait)
        record.begin(native.key.hint, prompt_id)
        try:
            to_send = prompt if ready is None else dict(ready())
        except BaseException:
            record.forget()  # nothing was sent
            close_socket(socket)
            raise
        try:
            submitted = native.submit(to_send, prompt_id, client_id)
        except (SubmissionUncertainError, ProtocolError) as exc:
            record.uncertain(str(exc))
            close_socket(socket)
            raise
        except RunningHubError:
            record.forget()  # refused, no capacity, never sent: nothing was queued
            close_socket(socket)
            raise
        except BaseException as exc:
            record.uncertain(f"{type(exc).__name__}: {scrub(str(exc))}"[:500])
            close_socket(socket)
            raise
        record.created(submitted.prompt_id)
        return _Started(native, submitted.prompt_id, socket, "QUEUED", heard_from_start=connected)

    return create

def _owner(pool: KeyPool, entry: LedgerEntry, senders: tuple[NativeClient, ...] = ()) -> NativeClient:
    """The native client of the key that sent `entry`'s prompt: by its last 4 (among the
    pool's keys and `senders`), else the key whose remote knows the prompt, else the first
    key (whose answer then says unknown)."""
    clients = [shared_native(c) for c in pool.clients()]
    hinted = list({id(c): c for c in [*clients, *senders] if c.key.hint == entry.key_hint}.values())
    if len(hinted) == 1 or len(clients) == 1:
        return (hinted or clients)[0]
    for candidate in clients:
        try:
            if candidate.find(entry.task_id).place is not Place.UNKNOWN:
                return candidate
        except RunningHubError:
            continue
    return clients[0]


def _reattach(pool: KeyPool, earlier: LedgerEntry, record: NativeRecord, follow: Callable[..., NativePromptResult],
              prompt: Mapping[str, Any], senders: tuple[NativeClient, ...] = ()) -> NativePromptResult | None:
    """An earlier run's prompt: reuse it (finished), follow it (queued or running), or None
    when a new prompt must be sent (it failed, was cancelled, or the remote forgot it)."""
    native = _owner(pool, earlier, senders)
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
