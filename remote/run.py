"""Run a workflow or AI app with overrides and wait for it: check, submit once through the
key pool (which picks a key with a free slot and waits when all are busy), wait."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..client.api import RunningHubClient, rejected_outputs
from ..client.errors import InvalidNodeInfoError, RunningHubError, TaskNotFoundError, TransportError
from ..client.overrides import NodeOverride, check_overrides, coerce_text_values, merge_overrides
from ..client.polling import PollPolicy, TaskProgress, wait_for_task
from ..client.ledger import LedgerEntry
from ..client.pool import KeyPool
from ..client.records import TaskResult, TaskState
from ..client import task_socket
from . import uploads
from .reattach import NOT_RECORDED, RunJournal

log = logging.getLogger("runninghub_bridge.remote")

WORKFLOW_CACHE_SECONDS = 300.0
_workflows: dict[tuple[str, str, str], tuple[float, dict]] = {}
_workflows_lock = threading.Lock()


@dataclass(frozen=True)
class RemoteTask:
    """The RH_TASK value passed from RH Run Workflow to RH Fetch Outputs.

    It keeps the client that created the task, because outputs, status and cancel must use
    the same key (its repr shows only the key's last 4 characters)."""

    task_id: str
    kind: str
    workflow_id: str
    client: RunningHubClient
    result: TaskResult | None = None

    def __repr__(self) -> str:
        return f"RemoteTask({self.kind} {self.workflow_id}, task {self.task_id}, {self.client!r})"


def remote_workflow(client: RunningHubClient, workflow_id: str, *, max_age: float = WORKFLOW_CACHE_SECONDS) -> dict:
    """The workflow's API format, cached a few minutes per site, key and id."""
    cache_key = (client.site.base_url, client.key.hint, str(workflow_id))
    now = time.monotonic()
    with _workflows_lock:
        hit = _workflows.get(cache_key)
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    workflow = client.workflow_api_json(workflow_id)
    with _workflows_lock:
        _workflows[cache_key] = (now, workflow)
    return workflow


def prepare_overrides(client: RunningHubClient, kind: str, workflow_id: str,
                      overrides: list[NodeOverride]) -> list[NodeOverride]:
    """Merge (later wins), then for workflows check every entry against the remote workflow
    before anything billed happens, converting typed-in text to the fields' types."""
    entries = merge_overrides(overrides)
    if kind != "workflow" or not entries:
        return entries
    try:
        workflow = remote_workflow(client, workflow_id)
    except TransportError as exc:  # business errors (unknown workflow, bad key) are raised as they are
        log.warning("could not fetch workflow %s to check overrides (%s); RunningHub will check them", workflow_id, exc)
        return entries
    entries = coerce_text_values(workflow, entries)
    check_overrides(workflow, entries, workflow_id=workflow_id)
    return entries


def run_and_wait(pool: KeyPool | RunningHubClient, *, kind: str, workflow_id: str, overrides: list[NodeOverride],
                 instance_type: str = "default", poll_policy: PollPolicy | None = None,
                 capacity_budget: float = 600.0, should_stop: Callable[[], bool] | None = None,
                 on_progress: Callable[[TaskProgress], None] | None = None,
                 on_submitted: Callable[[str], None] | None = None,
                 on_wait: Callable[[str], None] | None = None,
                 on_warning: Callable[[str], None] | None = None,
                 journal: RunJournal | None = None,
                 on_reattach: Callable[[str], None] | None = None) -> RemoteTask:
    """Check the overrides, create the task on a key of `pool` with a free slot (a bare
    client is a pool of one key), and wait for it with that key. The key's slot is held
    until the task ends. `on_wait(text)` tells why submitting waits, `on_warning(text)`
    that a key was taken out of the pool. With a `journal`, the task is kept in the task
    ledger, and a run with the same fingerprint as an earlier task re-attaches to it
    (remote/reattach.py) instead of creating another one, telling `on_reattach(task_id)`."""
    if isinstance(pool, RunningHubClient):
        pool = KeyPool.of_client(pool)
    workflow_id = str(workflow_id).strip()
    if not workflow_id:
        raise RunningHubError("RH Run Workflow: workflow_id is empty. Paste the id of the RunningHub workflow "
                              "(the number in its URL) or of the AI app.")
    recorded = journal.for_run(pool.site, kind, workflow_id, instance_type, overrides) if journal else NOT_RECORDED

    def wait(client: RunningHubClient, task_id: str, initial: TaskState, net_wss_url: str | None = None) -> RemoteTask:
        result = recorded.outcome(lambda: wait_for_task(
            client, task_id, initial_state=initial, policy=poll_policy, on_progress=recorded.observe(on_progress),
            should_stop=should_stop, run_time_key=(client.site.base_url, kind, workflow_id),
            net_wss_url=net_wss_url, open_socket=socket_opener(client, kind, workflow_id, task_id)))
        return RemoteTask(task_id=task_id, kind=kind, workflow_id=workflow_id, client=client, result=result)

    def create(client: RunningHubClient, named: list[NodeOverride]):
        if kind == "ai-app":
            return client.run_ai_app(workflow_id, named, instance_type=instance_type)
        try:
            return client.create_task(workflow_id, named, instance_type=instance_type)
        except InvalidNodeInfoError as exc:
            raise _named_mismatch(client, workflow_id, named, exc) from exc

    def upload_then_create(client: RunningHubClient):
        named = uploads.for_key(client, entries)  # the uploads they name, sent with this key too
        return recorded.recording(lambda c: create(c, named))(client)

    try:
        while True:
            with recorded.turn(should_stop):
                earlier = recorded.earlier()
                if earlier is None:
                    entries = pool.call_any(lambda client: prepare_overrides(client, kind, workflow_id, overrides),
                                            on_warning=on_warning)
                    lease, handle = pool.submit(upload_then_create, should_stop=should_stop,
                                                budget_seconds=capacity_budget, on_wait=on_wait,
                                                on_warning=on_warning)
                    break
            reattached = _reattach(pool, earlier, wait, on_reattach)
            if reattached is not None:
                return reattached
        with lease:  # the slot is given back when the task ends, however it ends
            if on_submitted is not None:
                on_submitted(handle.task_id)
            rejected = rejected_outputs(handle)
            if rejected is not None:
                log.warning("%s", rejected)
                if on_warning is not None:
                    on_warning(rejected)
            return wait(lease.client, handle.task_id, handle.state, handle.net_wss_url)
    finally:
        recorded.unfollow(recorded.entry)  # the wait's outcome does it; this covers an error before it


def _named_mismatch(client: RunningHubClient, workflow_id: str, entries: list[NodeOverride],
                    refused: InvalidNodeInfoError) -> InvalidNodeInfoError:
    """RunningHub refused overrides the cached workflow accepted (803: nothing was created): the
    workflow changed on the website since. Its current API format names the entries to fix;
    the refusal as it came when that cannot be read or names none."""
    try:
        check_overrides(remote_workflow(client, workflow_id, max_age=0), entries, workflow_id=workflow_id)
    except InvalidNodeInfoError as named:
        return named
    except RunningHubError as exc:
        log.info("could not read workflow %s again to name the refused overrides (%s)", workflow_id, exc)
    return refused


def socket_opener(client: RunningHubClient, kind: str, workflow_id: str, task_id: str):
    """How the wait follows the task's websocket: with the remote workflow (cached), so the
    executing node is shown by its class name."""
    return task_socket.opener(client.site, workflow=lambda: _workflow_if_known(client, kind, workflow_id),
                              label=f"task {task_id}")


def _workflow_if_known(client: RunningHubClient, kind: str, workflow_id: str) -> dict | None:
    if kind != "workflow":
        return None
    try:
        return remote_workflow(client, workflow_id)
    except RunningHubError as exc:
        log.info("no remote workflow for the progress of %s (%s)", workflow_id, type(exc).__name__)
        return None


def _reattach(pool: KeyPool, earlier: LedgerEntry, wait: Callable[..., RemoteTask],
              on_reattach: Callable[[str], None] | None) -> RemoteTask | None:
    """Wait for (or fetch) the earlier task of the same run, with the key that created it.
    None when RunningHub no longer knows it (a definite answer, recorded as failed: a new
    task is then created and nothing is billed twice)."""
    if on_reattach is not None:
        on_reattach(earlier.task_id)
    try:
        return wait(pool.client_for_task(earlier.task_id, key_hint=earlier.key_hint), earlier.task_id,
                    TaskState.parse(earlier.status))
    except TaskNotFoundError as exc:
        log.warning("RunningHub no longer knows task %s (%s); creating a new one", earlier.task_id, exc)
        return None
