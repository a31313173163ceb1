"""Tasks and their life cycle: [CREATE ->] QUEUED -> RUNNING -> SUCCESS | FAILED, per-key concurrency."""

from __future__ import annotations

import itertools
import logging
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .executors.base import Cancelled, Executor, NodeFailure, OutputFile, RunContext, cancelled_reason, failed_reason
from .progress import status_message
from .protocol import redact

log = logging.getLogger("rhsim.tasks")

CREATE, QUEUED, RUNNING, SUCCESS, FAILED = "CREATE", "QUEUED", "RUNNING", "SUCCESS", "FAILED"
WAITING = (CREATE, QUEUED)  # created, not running yet: both count against the queue


class TaskIds:
    """19-digit snowflake-like ids: milliseconds since an epoch, shifted, plus a sequence."""

    _EPOCH_MS = 1_288_834_974_657  # the classic snowflake epoch gives 19 digits today

    def __init__(self):
        self._lock = threading.Lock()
        self._last = 0
        self._node = int.from_bytes(os.urandom(2), "big") & 0x3FF

    def next(self) -> str:
        with self._lock:
            value = ((int(time.time() * 1000) - self._EPOCH_MS) << 22) | (self._node << 12)
            value = max(value, self._last + 1)
            self._last = value
        while value < 10**18:  # keep 19 digits whatever the clock says
            value += 10**18
        return str(value)


@dataclass
class WebhookRecord:
    url: str
    callback_status: str = "PENDING"  # PENDING, RETRYING, SUCCESS, FAILED
    retry_count: int = 0
    attempts: list[dict] = field(default_factory=list)
    event_data: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


@dataclass
class Task:
    task_id: str
    client_id: str
    key: str
    kind: str  # "workflow" | "ai-app"
    workflow_id: str
    overrides: list[dict]
    graph: dict
    prompt_tips: dict
    ctx: RunContext
    instance_type: str | None = None
    use_personal_queue: bool = False
    webhook: WebhookRecord | None = None
    api: str = "v1"
    status: str = QUEUED
    cancelled: bool = False
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    outputs: list[OutputFile] = field(default_factory=list)
    published: list[Any] = field(default_factory=list)  # storage.StoredFile per output
    failed_reason: dict | None = None
    cost_coins: int = 0
    run_seconds: float = 0.0

    @property
    def cost_time(self) -> int:
        if self.started is None or self.finished is None:
            return 0
        return max(1, math.ceil(self.finished - self.started - 1e-6))

    @property
    def feed(self):
        return self.ctx.feed

    def summary(self) -> dict:
        return {
            "taskId": self.task_id,
            "clientId": self.client_id,
            "promptId": self.ctx.prompt_id,
            "key": redact(self.key),
            "status": self.status,
            "cancelled": self.cancelled,
            "kind": self.kind,
            "workflowId": self.workflow_id,
            "api": self.api,
            "overrides": self.overrides,
            "instanceType": self.instance_type,
            "usePersonalQueue": self.use_personal_queue,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "queuedSeconds": None if self.started is None else round(self.started - self.created, 4),
            "runSeconds": None if self.started is None or self.finished is None
            else round(self.finished - self.started, 4),
            "outputs": [{"nodeId": o.node_id, "name": o.name, "fileType": o.file_type} for o in self.outputs],
            "failedReason": self.failed_reason,
            "consumeCoins": self.cost_coins,
            "webhookUrl": self.webhook.url if self.webhook else None,
            "webhookStatus": self.webhook.callback_status if self.webhook else None,
        }


class TaskManager:
    """Holds every task; starts queued ones as per-key slots free up."""

    def __init__(self, executor: Executor, settings, on_success: Callable[[Task], None],
                 on_finish: Callable[[Task], None]):
        self.executor = executor
        self.settings = settings
        self.on_success = on_success  # bills and publishes, before the status turns SUCCESS
        self.on_finish = on_finish  # after any end (success, failure, cancel)
        self.ids = TaskIds()
        self.lock = threading.RLock()
        self._wake = threading.Condition(self.lock)
        self._tasks: dict[str, Task] = {}
        self._order = itertools.count()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="rhsim-scheduler", daemon=True)
        self._thread.start()

    # -- queries --------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        with self.lock:
            return self._tasks.get(task_id)

    def all(self) -> list[Task]:
        with self.lock:
            return sorted(self._tasks.values(), key=lambda t: (t.created, t.task_id))

    def by_client_id(self, client_id: str) -> Task | None:
        with self.lock:
            return next((t for t in self._tasks.values() if t.client_id == client_id), None)

    def by_prompt_id(self, prompt_id: str) -> Task | None:
        with self.lock:
            return next((t for t in self._tasks.values() if t.ctx.prompt_id == prompt_id), None)

    def open_count(self, key: str) -> int:
        """Tasks of `key` not finished yet (ComfyUI's `queue_remaining` for its socket)."""
        with self.lock:
            return sum(1 for t in self._tasks.values() if t.key == key and t.status in (*WAITING, RUNNING))

    def running_count(self, key: str) -> int:
        with self.lock:
            return sum(1 for t in self._tasks.values() if t.key == key and t.status == RUNNING)

    def queued_count(self, key: str) -> int:
        with self.lock:
            return sum(1 for t in self._tasks.values() if t.key == key and t.status in WAITING)

    def has_room(self, key: str) -> bool:
        """Whether a new task for `key` may be created (a slot or room in the queue)."""
        with self.lock:
            if self.running_count(key) < self.settings.concurrency and self.settings.queue_seconds <= 0 \
                    and self.queued_count(key) == 0:
                return True
            return self.queued_count(key) < self.settings.queue_depth

    # -- changes --------------------------------------------------------------
    def add(self, task: Task) -> None:
        """Takes a new task: CREATE for `create_seconds` if set, else QUEUED."""
        with self.lock:
            task.status = CREATE if self.settings.create_seconds > 0 else QUEUED
            self._tasks[task.task_id] = task
            log.info("task %s created for key %s (%s %s)", task.task_id, redact(task.key), task.kind, task.workflow_id)
            self._pump()
            self._wake.notify_all()

    def add_running(self, task: Task) -> None:
        """Takes a task whose execution is driven from outside (a native-endpoint prompt): it is
        RUNNING at once (it holds one of the key's slots) and the scheduler never runs it;
        `finish_external` ends it."""
        with self.lock:
            task.status = RUNNING
            task.started = task.created
            self._tasks[task.task_id] = task
            log.info("task %s (%s) taken for key %s", task.task_id, task.kind, redact(task.key))

    def discard(self, task: Task) -> None:
        """Forgets a task that never became real (its prompt was refused): nothing billed."""
        with self.lock:
            self._tasks.pop(task.task_id, None)
            self._pump()
            self._wake.notify_all()

    def finish_external(self, task: Task, reason: dict | None, cancelled: bool = False) -> bool:
        """Ends an `add_running` task: success (billed) when `reason` is None, else FAILED
        (`cancelled`: interrupted or deleted, as a cancel). False if it had ended already."""
        with self.lock:
            if task.status != RUNNING:
                return False
            if cancelled:
                task.cancelled = True
            self._end(task, [], reason)
            return True

    def cancel(self, task: Task) -> bool:
        with self.lock:
            if task.status not in (*WAITING, RUNNING):
                return False
            was_running = task.status == RUNNING
            task.cancelled = True
            task.finished = time.time()
            task.failed_reason = cancelled_reason()
            task.status = FAILED
            log.info("task %s cancelled while %s", task.task_id, "running" if was_running else "queued")
            if was_running:
                task.feed.interrupted(task.graph)
                task.feed.publish(status_message(self.open_count(task.key)))
            self.on_finish(task)
            self._pump()
            self._wake.notify_all()
        self.executor.cancel(task.ctx)
        return True

    def forget_all(self) -> None:
        """Cancels open tasks and forgets every task (test hook reset)."""
        for task in self.all():
            self.cancel(task)
        with self.lock:
            self._tasks.clear()

    def stop(self) -> None:
        with self.lock:
            self._stop = True
            self._wake.notify_all()

    # -- scheduling -----------------------------------------------------------
    def _loop(self) -> None:
        with self.lock:
            while not self._stop:
                self._pump()
                self._wake.wait(0.05)

    def _pump(self) -> None:
        now = time.time()
        running: dict[str, int] = {}
        for t in self._tasks.values():
            if t.status == RUNNING:
                running[t.key] = running.get(t.key, 0) + 1
        for task in self.all():
            if task.status == CREATE and now - task.created >= self.settings.create_seconds:
                task.status = QUEUED
            if task.status != QUEUED:
                continue
            if running.get(task.key, 0) >= self.settings.concurrency:
                continue
            if now - task.created < self.settings.create_seconds + self.settings.queue_seconds:
                continue
            running[task.key] = running.get(task.key, 0) + 1
            task.status = RUNNING
            task.started = now
            task.run_seconds = float(self.settings.run_seconds)
            threading.Thread(target=self._work, args=(task,), name=f"rhsim-task-{task.task_id}",
                             daemon=True).start()

    def _work(self, task: Task) -> None:
        outputs, reason = [], None
        try:
            outputs = self.executor.run(task.ctx)
        except Cancelled:
            pass
        except NodeFailure as exc:
            reason = exc.failed_reason
        except Exception as exc:  # noqa: BLE001 - an executor bug still ends the task
            log.exception("task %s: executor error", task.task_id)
            reason = failed_reason("", "", type(exc).__name__, str(exc))
        failed_node = (reason or {}).get("node_id") or None
        self.executor.play(task.ctx, outputs, failed_node, task.started + task.run_seconds - time.time(),
                           self.settings.progress_steps)
        with self.lock:
            if task.status != RUNNING:  # cancelled meanwhile
                return
            self._end(task, outputs, reason)

    def _end(self, task: Task, outputs: list[OutputFile], reason: dict | None) -> None:
        """SUCCESS (billed) or FAILED, with the final messages (lock held)."""
        # Everything a reader needs is in place before the status changes: handlers read
        # tasks without the lock.
        task.finished = time.time()
        if reason is None:
            task.outputs = outputs
            self.on_success(task)
            task.status = SUCCESS
            task.feed.succeeded()
        else:
            task.failed_reason = reason
            task.status = FAILED
            task.feed.failed(reason, task.graph)
        task.feed.publish(status_message(self.open_count(task.key)))
        log.info("task %s finished: %s in %.2fs", task.task_id, task.status, task.finished - task.started)
        self.on_finish(task)
        self._pump()
        self._wake.notify_all()


def new_client_id() -> str:
    return secrets.token_hex(16)
