"""Routes of the task panel (the "RunningHub" sidebar tab): the task ledger as a list,
Cancel for a task still on its way, and clearing an entry.

    GET    /runninghub/tasks                    the newest ledger entries (no key: its last 4 only)
    POST   /runninghub/tasks/{entry}/cancel     cancel the entry's remote task (JSON body, e.g. {})
    DELETE /runninghub/tasks/{entry}            forget a finished or "may exist" entry

Changes reach the panel as `runninghub.tasks` events (host/tasks.py), so it never polls
these routes in a loop. Cancel wants a JSON body: a form on another web page cannot send
one without the browser asking ComfyUI first (CORS preflight), so it cannot cancel tasks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from ..client.errors import CredentialsError, RunningHubError
from ..client.ledger import MAY_EXIST, SUBMITTING, WAITING, LedgerEntry, LedgerError
from ..client.redact import scrub
from ..remote import native_record, native_shared, native_stop
from . import accounts, tasks

log = logging.getLogger("runninghub_bridge.routes")

PREFIX = "/runninghub/tasks"
LIST_LIMIT = 200
CANCEL_DEADLINE = 25.0  # seconds for RunningHub to answer a cancel
_ENTRY = re.compile(r"^[0-9]{1,12}$")


class PanelError(Exception):
    """A request the panel cannot serve: answered with `status` and this message."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _reply(data: Any, status: int = 200):
    from aiohttp import web

    return web.json_response(data, status=status)


def _failure(exc: BaseException):
    if isinstance(exc, PanelError):
        status = exc.status
    elif isinstance(exc, LedgerError):  # the ledger file is damaged or not writable: its text says what to do
        status = 500
    elif isinstance(exc, CredentialsError):
        status = 409
    elif isinstance(exc, RunningHubError):
        status = 502
    else:
        log.exception("RunningHub task panel route failed")
        status = 500
    return _reply({"error": scrub(str(exc)) or type(exc).__name__, "error_type": type(exc).__name__}, status)


def _entry(request) -> LedgerEntry:
    raw = request.match_info.get("entry", "")
    if not _ENTRY.match(raw):
        raise PanelError(f"Invalid task entry {raw[:20]!r}: expected the entry number the panel shows.", 400)
    found = tasks.ledger().get(int(raw))
    if found is None:
        raise PanelError(f"Task entry #{raw} is not in the ledger (any more): reload the panel.", 404)
    return found


async def list_tasks(request):
    try:
        entries = await asyncio.to_thread(tasks.ledger().entries, LIST_LIMIT)
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    now = time.time()
    return _reply({"tasks": [e.view(now) for e in entries],
                   "lifetime_hours": tasks.ledger().lifetime / 3600})


def _cancel(entry: LedgerEntry) -> None:
    """Cancel with the key that created the task, then record it (a node waiting on the
    task sees the cancel on its next poll and ends too)."""
    account = accounts.account_for(entry.account)
    if account.site.base_url != entry.site:
        raise PanelError(f"Profile '{entry.account}' now points at {account.site.host}, but task {entry.task_id} "
                         f"runs on {entry.site}: cancel it on that site's website.", 409)
    client = accounts.client_for_task(account, entry.task_id, key_hint=entry.key_hint)
    if entry.kind == native_record.KIND:  # a prompt of an RH Remote Group: interrupted or taken off the queue
        native_stop.stop_prompt(native_shared.shared_native(client), entry.task_id)
    else:
        client.cancel(entry.task_id)
    tasks.ledger().finished(entry.entry, "CANCEL", message="Cancelled from the RunningHub task panel.")
    log.info("RunningHub task %s cancelled from the task panel", entry.task_id)


async def cancel_task(request):
    try:
        entry = await asyncio.to_thread(_entry, request)
        if entry.status not in WAITING or not entry.task_id:
            raise PanelError(f"Task entry #{entry.entry} is {entry.status.lower()}: only queued or running tasks "
                             "can be cancelled.", 409)
        try:
            await asyncio.wait_for(asyncio.to_thread(_cancel, entry), CANCEL_DEADLINE)
        except asyncio.TimeoutError:
            raise PanelError(f"RunningHub did not answer the cancel of task {entry.task_id} within "
                             f"{CANCEL_DEADLINE:g} s; try again, or cancel it on the website.", 504) from None
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    return _reply({"cancelled": entry.task_id, "entry": entry.entry})


async def clear_task(request):
    try:
        entry = await asyncio.to_thread(_entry, request)
        if entry.status in WAITING or entry.status == SUBMITTING:
            raise PanelError(f"Task {entry.task_id or '#' + str(entry.entry)} is still "
                             f"{entry.status.lower()}: cancel it first (clearing it would let the next run "
                             "create and bill another one).", 409)
        await asyncio.to_thread(tasks.ledger().forget, entry.entry)
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    if entry.status == MAY_EXIST:
        log.info("'may exist' entry #%d (%s %s) cleared from the task panel: the next run with its inputs creates "
                 "a new task", entry.entry, entry.kind, entry.workflow_id)
    return _reply({"cleared": entry.entry})


TASK_ROUTES = [
    ("GET", PREFIX, list_tasks),
    ("POST", f"{PREFIX}/{{entry}}/cancel", cancel_task),
    ("DELETE", f"{PREFIX}/{{entry}}", clear_task),
]
