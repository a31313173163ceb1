"""The prompts of the native ComfyUI endpoint (`/proxy/{key}/…`), kept as tasks.

Every accepted prompt is a Task of kind `native` (api `native`) in the simulator's
TaskManager: it holds one of its key's slots (`concurrency`, shared with workflow tasks),
shows in `/__sim__/tasks` and `currentTaskCounts`, and is billed `coins_per_task` when it
succeeds, exactly as a task; interrupted, deleted and failed prompts cost nothing.

A prompt's end is noticed from the upstream socket messages the proxy relays (native_proxy.py:
its history is read shortly after its end message), and reading a finished prompt's history
through the proxy ends its task at once, so a client that saw the history sees the bill too.
A watcher thread is the fallback (no client socket open): every second while prompts are
open, and a few times 0.1 s apart when poked (a delete, an interrupt, an end message whose
history was not there yet), it follows the upstream ComfyUI (`GET /queue`, then
`GET /history/<id>` for the prompts no longer queued) and ends each task when its prompt
ends; a prompt absent from both queue and history on two polls in a row was deleted.

Ownership: which key made which prompt, the upstream clientId each (key, clientId) pair
gets, and the files (outputs of a key's prompts, its uploads) `/view` may serve to a key."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading

from .executors.base import RunContext, cancelled_reason
from .executors.comfyui import ComfyUIError, file_refs, history_outcome
from .progress import TaskFeed
from .protocol import redact
from .tasks import RUNNING, Task, new_client_id

log = logging.getLogger("rhsim.native")

POLL_SECONDS = 1.0  # while prompts are open: the fallback to the socket messages
BURST_SECONDS = 0.1  # after a poke
BURST_POLLS = 3
IDLE_SECONDS = 1.0
ABSENT_POLLS = 2  # polls a prompt must be missing from queue and history before it counts as deleted


class Refused(Exception):
    """A prompt the endpoint does not accept: HTTP `status` with this JSON body."""

    def __init__(self, status: int, body: dict):
        super().__init__(body.get("error", {}).get("message", ""))
        self.status = status
        self.body = body


def error_body(kind: str, message: str, **extra) -> dict:
    return {"error": {"type": kind, "message": message}, **extra}


class NativePrompts:
    def __init__(self, app, executor):
        self.app = app
        self.tasks = app.tasks
        self.executor = executor
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._files: dict[str, set[tuple[str, str, str]]] = {}  # key -> (type, subfolder, filename)
        self._wake = threading.Event()
        self._burst = 0
        self._stop = False
        self._thread = threading.Thread(target=self._watch, name="rhsim-native-watch", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ identities
    def upstream_client_id(self, key: str, client_id: str) -> str:
        """The clientId the upstream ComfyUI knows (key, client_id) by: distinct per key, never the key."""
        return hmac.new(self._secret, f"{key}\0{client_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def owner(self, prompt_id: str) -> Task | None:
        task = self.tasks.by_prompt_id(prompt_id) if isinstance(prompt_id, str) and prompt_id else None
        return task if task is not None and task.kind == "native" else None

    def owns(self, key: str, prompt_id) -> bool:
        task = self.owner(prompt_id)
        return task is not None and task.key == key

    def client_of(self, task: Task) -> str:
        return task.ctx.state.get("client_id", "")

    def open_tasks(self, key: str) -> list[Task]:
        """The key's prompts queued or running (not ended at the simulator)."""
        return [t for t in self.tasks.all() if t.kind == "native" and t.key == key and t.status == RUNNING]

    def open_ids(self, key: str) -> list[str]:
        return [t.ctx.prompt_id for t in self.open_tasks(key)]

    def unended_count(self, key: str) -> int:
        """The key's open prompts whose end no socket message has told yet."""
        return sum(1 for t in self.open_tasks(key) if not t.ctx.state.get("end_seen"))

    # ------------------------------------------------------------------ files
    def add_files(self, key: str, refs) -> None:
        with self._lock:
            self._files.setdefault(key, set()).update(refs)

    def may_view(self, key: str, ref: tuple[str, str, str]) -> bool:
        with self._lock:
            return ref in self._files.get(key, ())

    # ------------------------------------------------------------------ prompts
    def reserve(self, account, prompt_id: str, client_id: str, prompt) -> Task:
        """Takes a slot for a new prompt (before it is sent upstream), or raises Refused."""
        settings = self.app.settings
        with self.tasks.lock:
            if account.coins < settings.coins_per_task:
                raise Refused(402, error_body("insufficient_balance", "the account's balance is too low to run "
                                              "a prompt; top it up and try again"))
            if self.tasks.by_prompt_id(prompt_id) is not None:
                raise Refused(400, error_body("duplicate_prompt_id", "this prompt_id was used already; choose "
                                              "a new one", node_errors={}))
            if self.tasks.open_count(account.key) >= settings.concurrency:
                log.info("native prompt refused for key %s: %d open (429)", redact(account.key),
                         self.tasks.open_count(account.key))
                raise Refused(429, error_body("too_many_prompts", f"the account already has {settings.concurrency}"
                                              " queued or running prompts; nothing was queued, retry later",
                                              node_errors={}))
            task_id = self.tasks.ids.next()
            ctx = RunContext(task_id=task_id, graph=prompt if isinstance(prompt, dict) else {}, storage=None,
                             state={"prompt_id": prompt_id, "client_id": client_id, "accepted": False, "absent": 0},
                             feed=TaskFeed(prompt_id))
            task = Task(task_id=task_id, client_id=new_client_id(), key=account.key, kind="native", workflow_id="",
                        overrides=[], graph=ctx.graph, prompt_tips={}, ctx=ctx, api="native")
            self.tasks.add_running(task)
        return task

    def accepted(self, task: Task, reply: dict) -> None:
        task.prompt_tips = {"result": True, "error": None, "outputs_to_execute": [],
                            "node_errors": reply.get("node_errors") or {}}
        task.ctx.state["accepted"] = True
        log.info("native prompt %s accepted for key %s (task %s)", task.ctx.prompt_id, redact(task.key), task.task_id)

    def refused(self, task: Task) -> None:
        self.tasks.discard(task)

    # ------------------------------------------------------------------ ends
    def observe(self, prompt_id: str, entry) -> None:
        """A /history entry seen for an own prompt: ends its task if the prompt has ended."""
        task = self.owner(prompt_id)
        if task is None or not isinstance(entry, dict):
            return
        self.add_files(task.key, file_refs(entry.get("outputs") or {}))
        if (entry.get("status") or {}).get("completed") is None or task.status != RUNNING:
            return
        outcome, reason = history_outcome(entry)
        if self.tasks.finish_external(task, reason, cancelled=outcome == "interrupted"):
            log.info("native prompt %s ended: %s", prompt_id, outcome)

    def poke(self) -> None:
        """Look upstream now and a few times soon after (after a delete or an interrupt)."""
        self._burst = BURST_POLLS
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()

    def _watch(self) -> None:
        while not self._stop:
            open_tasks = [t for t in self.tasks.all()
                          if t.kind == "native" and t.status == RUNNING and t.ctx.state.get("accepted")]
            if open_tasks:
                try:
                    self._poll(open_tasks)
                except (ComfyUIError, ValueError, TypeError) as exc:
                    log.warning("native prompts: %s", exc)
            if self._burst > 0 and open_tasks:
                self._burst -= 1
                wait = BURST_SECONDS
            else:
                self._burst = 0 if not open_tasks else self._burst
                wait = POLL_SECONDS if open_tasks else IDLE_SECONDS
            self._wake.wait(wait)
            self._wake.clear()

    def _poll(self, open_tasks: list[Task]) -> None:
        status, queue = self.executor.json_call("GET", "/queue", timeout=10)
        if status != 200 or not isinstance(queue, dict):
            return
        queued = {item[1] for part in ("queue_running", "queue_pending") for item in queue.get(part) or []
                  if isinstance(item, list) and len(item) > 1}
        for task in open_tasks:
            prompt_id = task.ctx.prompt_id
            if prompt_id in queued:
                task.ctx.state["absent"] = 0
                continue
            status, history = self.executor.json_call("GET", f"/history/{prompt_id}", timeout=10)
            entry = history.get(prompt_id) if status == 200 and isinstance(history, dict) else None
            if entry is not None:
                task.ctx.state["absent"] = 0
                self.observe(prompt_id, entry)
                continue
            task.ctx.state["absent"] += 1
            if task.ctx.state["absent"] >= ABSENT_POLLS:
                if self.tasks.finish_external(task, cancelled_reason(), cancelled=True):
                    log.info("native prompt %s was deleted from the queue", prompt_id)

