"""This ComfyUI's task ledger (client/ledger.py) in its user folder, and its changes pushed
to the task panel as they happen (one `runninghub.tasks` event each, no polling).

The event carries nothing: it goes to every socket open on ComfyUI's `/ws`, and any web
page can open one (a socket has no CORS, and ComfyUI lets `Origin: null` through), so task
ids, seeds, costs and output URLs stay behind GET /runninghub/tasks, which only ComfyUI's
own page can read (host/host_guard.py). The panel reloads its list on the event."""

from __future__ import annotations

import threading

from ..client.api import RunningHubClient
from ..client.credentials import Account
from ..client.ledger import TaskLedger
from ..remote.reattach import RunJournal
from . import accounts, comfy

TASKS_EVENT = "runninghub.tasks"

_ledger: TaskLedger | None = None
_lock = threading.Lock()


def ledger() -> TaskLedger:
    """The process's ledger at `<user dir>/runninghub/tasks.sqlite3`."""
    global _ledger
    with _lock:
        if _ledger is None:
            _ledger = TaskLedger(comfy.ledger_path(), on_change=_tell_panel)
        return _ledger


def _tell_panel() -> None:
    comfy.broadcast(TASKS_EVENT, {})


def journal(account: Account, seed: int, prompt_id: str | None, node_id: str | None,
            run_index: int = 0) -> RunJournal:
    """How one RH Run Workflow call is recorded: its account, seed and list item complete the
    fingerprint."""
    return RunJournal(ledger(), account=account.profile, seed=int(seed), prompt_id=prompt_id, node_id=node_id,
                      run_index=int(run_index))


def client_for_task(account: Account, task_id: str) -> RunningHubClient:
    """The client of the key that created `task_id`: the ledger remembers its last 4 across
    restarts, so a pool need not ask RunningHub key by key."""
    known = ledger().for_task(task_id)
    hint = known.key_hint if known is not None and known.site == account.site.base_url else None
    return accounts.client_for_task(account, task_id, key_hint=hint)
