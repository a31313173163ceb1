"""The simulated RunningHub account system: settings, accounts, counters, and one method per
endpoint. HTTP framing, faults and routing live in server.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import protocol as P
from .bodies import form_text
from .executors.base import Executor, PromptInvalid, RunContext
from .faults import FaultBoard
from .progress import TaskFeed
from .protocol import ApiError, redact
from .storage import UPLOAD_KINDS, Storage, sniff_extension
from .tasks import FAILED, RUNNING, SUCCESS, WAITING, Task, TaskManager, WebhookRecord, new_client_id
from .webhook import deliver_webhook, webhook_allowed
from .workflows import WorkflowStore, apply_overrides, check_overrides, parse_graph_string, parse_node_info_list

log = logging.getLogger("rhsim.app")


CHOICES = {"websocket": ("on", "off", "drop", "silent")}


@dataclass
class Settings:
    """Runtime settings; every field can be changed through POST /__sim__/config."""

    concurrency: int = 2
    run_seconds: float = 0.0
    queue_seconds: float = 0.0
    queue_depth: int = 10
    legacy: bool = False
    legacy_success_msg: str = "SUCCESS"
    coins_per_task: int = 17
    max_upload_mb: float = 30.0
    url_ttl_seconds: float = 0.0  # 0: output URLs never expire
    webhook_timeout_seconds: float = 5.0
    webhook_retry_seconds: float = 1.0
    webhook_retries: int = 3
    create_seconds: float = 0.0  # a new task is CREATE this long before it is QUEUED
    websocket: str = "on"  # on | off (no netWssUrl) | drop (cut after websocket_drop_after messages) | silent
    websocket_drop_after: int = 3  # messages a `drop` socket sends before the connection is cut
    progress_steps: int = 20  # progress steps the built-in executor's sampler-like node reports (0: none)
    uploads_per_account: bool = False  # an upload is visible only to tasks of the key that made it
    redirect_outputs: bool = False  # the output host answers 302 to a CDN path first
    gzip_text_outputs: bool = False  # the output host gzips text files for clients that accept it

    def update(self, values: dict) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            kind = type(getattr(self, name))
            if name in CHOICES and value not in CHOICES[name]:
                raise ValueError(f"{name} must be one of {', '.join(CHOICES[name])}")
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            try:
                value = kind(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from exc
            setattr(self, name, value)


@dataclass
class Account:
    key: str
    coins: int = 100_000
    money: str | None = None
    disabled: bool = False
    free_user: bool = False

    def public(self) -> dict:
        data = asdict(self)
        data["key"] = redact(self.key)
        return data


@dataclass
class Counters:
    endpoints: dict[str, int] = field(default_factory=dict)
    keys: dict[str, dict[str, int]] = field(default_factory=dict)
    total: int = 0


class SimApp:
    def __init__(self, *, workflows_dir: Path, keys: list[str], site: str, storage: Storage,
                 executor_factory, settings: Settings, foreign_keys: list[str] = ()):
        self.site = site
        self.settings = settings
        self._initial_settings = Settings(**asdict(settings))
        self.storage = storage
        self.workflows = WorkflowStore(workflows_dir)
        self.executor: Executor = executor_factory(storage)
        self.faults = FaultBoard()
        self.accounts: dict[str, Account] = {k: Account(k) for k in keys}
        self._initial_accounts = {k: Account(**asdict(a)) for k, a in self.accounts.items()}
        self.foreign_keys = set(foreign_keys)
        self.counters = Counters()
        self.lock = threading.RLock()
        self.base_url = ""  # the API host, set by the server once it listens
        self.files_base_url = ""  # the output host, likewise
        self.tasks = TaskManager(self.executor, settings, self._on_success, self._on_finish)

    # ------------------------------------------------------------------ hooks
    def count(self, endpoint: str, key: str | None) -> None:
        with self.lock:
            c = self.counters
            c.total += 1
            c.endpoints[endpoint] = c.endpoints.get(endpoint, 0) + 1
            if key:
                per = c.keys.setdefault(redact(key), {})
                per[endpoint] = per.get(endpoint, 0) + 1

    def counts(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(asdict(self.counters)))

    def reset(self, what: list[str] | None = None) -> None:
        what = set(what or ["counts"])
        if "all" in what:
            what |= {"counts", "faults", "config", "accounts", "tasks"}
        with self.lock:
            if "counts" in what:
                self.counters = Counters()
            if "faults" in what:
                self.faults.clear()
            if "config" in what:
                for f in fields(Settings):
                    setattr(self.settings, f.name, getattr(self._initial_settings, f.name))
            if "accounts" in what:
                self.accounts = {k: Account(**asdict(a)) for k, a in self._initial_accounts.items()}
        if "tasks" in what:
            self.tasks.forget_all()

    def config_view(self) -> dict:
        with self.lock:
            return {
                "site": self.site,
                "executor": self.executor.name,
                "settings": asdict(self.settings),
                "accounts": [a.public() for a in self.accounts.values()],
            }

    def configure(self, values: dict) -> dict:
        values = dict(values)
        accounts = values.pop("keys", None)
        with self.lock:
            self.settings.update(values)
            for key, changes in (accounts or {}).items():
                account = self.accounts.get(key)
                if account is None:
                    account = self.accounts[key] = Account(key)
                for name, value in (changes or {}).items():
                    if name not in ("coins", "money", "disabled", "free_user"):
                        raise ValueError(f"unknown account setting {name!r}")
                    setattr(account, name, value)
            if accounts:
                log.info("accounts changed: %s", ", ".join(redact(k) for k in accounts))
        with self.tasks.lock:
            self.tasks._pump()
        return self.config_view()

    # ------------------------------------------------------------------ helpers
    def ok(self, data: Any) -> dict:
        reply = {"code": 0, "msg": self.settings.legacy_success_msg if self.settings.legacy else "success", "data": data}
        return self.finish(reply)

    def finish(self, reply: dict) -> dict:
        """Adds what the current drift mode puts on every envelope."""
        if self.settings.legacy:
            reply["errorMessages"] = None
        return reply

    def error_reply(self, err: ApiError) -> dict:
        return self.finish({"code": err.code, "msg": err.msg, "data": err.data})

    def authenticate(self, key: Any, param: str = "apiKey") -> Account:
        if not key or not isinstance(key, str):
            raise ApiError(P.PARAMS_INVALID, f"{param} is required")
        if key in self.foreign_keys:
            raise ApiError(P.APIKEY_USER_NOT_FOUND, "user not exist")
        account = self.accounts.get(key)
        if account is None or account.disabled:
            raise ApiError(P.APIKEY_UNAUTHORIZED)
        if account.free_user:
            raise ApiError(P.APIKEY_UNSUPPORTED_FREE_USER)
        return account

    @staticmethod
    def task_id_param(body: dict) -> str:
        raw = body.get("taskId")
        if raw is None or raw == "" or isinstance(raw, bool):
            raise ApiError(P.PARAMS_INVALID, "taskId is required")
        if isinstance(raw, int):
            return str(raw)
        if isinstance(raw, str):
            return raw.strip()
        raise ApiError(P.PARAMS_INVALID, "taskId must be a string")

    def own_task(self, account: Account, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None or task.key != account.key:
            raise ApiError(P.APIKEY_TASK_NOT_FOUND)
        return task

    # ------------------------------------------------------------------ create
    def create_task(self, account: Account, *, kind: str, target_id: Any, body: dict, api: str = "v1") -> Task:
        webapp = kind == "ai-app"
        param = "webappId" if webapp else "workflowId"
        if target_id is None or target_id == "" or isinstance(target_id, (bool, float, dict, list)):
            raise ApiError(P.PARAMS_INVALID, f"{param} is required")
        target_id = str(target_id)
        graph = self.workflows.load(target_id, webapp=webapp)
        if not webapp and body.get("workflow") not in (None, ""):
            graph = parse_graph_string(body["workflow"])
        overrides = parse_node_info_list(body.get("nodeInfoList"))
        instance_type = body.get("instanceType")
        if instance_type not in (None, "", "default", "plus"):
            raise ApiError(P.PARAMS_INVALID, f"instanceType must be 'default' or 'plus', not {instance_type!r}")
        personal = body.get("usePersonalQueue", False)
        if isinstance(personal, str) and personal.lower() in ("true", "false"):
            personal = personal.lower() == "true"
        if personal is None:
            personal = False
        if type(personal) is int and personal in (0, 1):  # Jackson reads 0 and 1 as booleans
            personal = bool(personal)
        if not isinstance(personal, bool):
            raise ApiError(P.PARAMS_INVALID, "usePersonalQueue must be a boolean")
        add_metadata = body.get("addMetadata", True)
        if isinstance(add_metadata, str):
            add_metadata = add_metadata.lower() != "false"
        webhook_url = body.get("webhookUrl") or None
        if webhook_url is not None and not isinstance(webhook_url, str):
            raise ApiError(P.PARAMS_INVALID, "webhookUrl must be a string")
        check_overrides(graph, overrides)
        final_graph = apply_overrides(graph, overrides)

        self._check_room(account)
        task_id, client_id = self.tasks.ids.next(), new_client_id()
        # Validation (and, for ComfyUI, input uploads and enqueueing) runs outside the lock.
        try:
            files = self.storage.for_account(account.key, self.settings.uploads_per_account)
            tips, state = self.executor.submit(final_graph, task_id, client_id, files)
        except PromptInvalid as exc:
            raise ApiError(P.VALIDATE_PROMPT_FAILED, data={"promptTips": P.dumps(exc.prompt_tips)}) from exc
        ctx = RunContext(task_id=task_id, graph=final_graph, storage=files,
                         add_metadata=bool(add_metadata), state=state, feed=TaskFeed(state["prompt_id"]))
        task = Task(
            task_id=task_id, client_id=client_id, key=account.key, kind=kind, workflow_id=target_id,
            overrides=[o.as_dict() for o in overrides], graph=final_graph, prompt_tips=tips, ctx=ctx,
            instance_type=instance_type or None, use_personal_queue=personal, api=api,
            webhook=WebhookRecord(webhook_url) if webhook_url else None,
        )
        with self.tasks.lock:
            try:
                self._check_room(account)  # again: another create may have taken the room meanwhile
            except ApiError:
                self.executor.cancel(ctx)
                raise
            self.tasks.add(task)
        return task

    def _check_room(self, account: Account) -> None:
        with self.tasks.lock:
            if account.coins < self.settings.coins_per_task:
                raise ApiError(P.NOT_ENOUGH_WALLET)
            if not self.tasks.has_room(account.key):
                log.info("create refused for key %s: queue full (421)", redact(account.key))
                raise ApiError(P.TASK_QUEUE_MAXED)

    def create_reply_data(self, task: Task) -> dict:
        return {
            "taskId": task.task_id,
            "clientId": task.client_id,
            "taskStatus": task.status,
            "promptTips": P.dumps(task.prompt_tips),
            "netWssUrl": self.wss_url(task) if task.status == RUNNING else None,
        }

    def wss_url(self, task: Task) -> str | None:
        """The task's websocket (ComfyUI's `/ws?clientId=`), unless sockets are off."""
        if self.settings.websocket == "off":
            return None
        return f"{self.base_url.replace('http', 'ws', 1)}/ws?clientId={task.client_id}"

    # ------------------------------------------------------------------ finish
    def _on_success(self, task: Task) -> None:
        """Bills the task and publishes its files (scheduler lock held, status not yet SUCCESS)."""
        task.published = [self.storage.publish(o.path, task.task_id, o.name) for o in task.outputs]
        task.cost_coins = self.settings.coins_per_task
        with self.lock:
            account = self.accounts.get(task.key)
            if account is not None:
                account.coins = max(0, account.coins - task.cost_coins)

    def _on_finish(self, task: Task) -> None:
        """Called by the scheduler under its lock when a task ends, cancel included."""
        if task.webhook is not None:
            threading.Thread(target=self._send_webhook, args=(task,), daemon=True,
                             name=f"rhsim-webhook-{task.task_id}").start()

    def _send_webhook(self, task: Task) -> None:
        reply = self.outputs_reply(task, numeric_cost_time=True)
        event = {"event": "TASK_END", "taskId": task.task_id, "eventData": P.dumps(reply)}
        if not webhook_allowed(task.webhook.url):
            task.webhook.callback_status = "FAILED"
            task.webhook.attempts.append({"time": time.time(), "error": "the simulator only calls loopback hosts"})
            log.warning("task %s: webhook %s not called (loopback hosts only)", task.task_id, task.webhook.url)
            return
        deliver_webhook(task.webhook, event, self.settings)

    # ------------------------------------------------------------------ outputs
    def file_url(self, entry) -> str:
        """Where a published file is downloaded: the output host, whatever Host the client sent."""
        return self.files_base_url + self.storage.url_path(entry)

    def output_items(self, task: Task, numeric_cost_time: bool = False) -> list[dict]:
        cost_time = task.cost_time if numeric_cost_time else str(task.cost_time)
        return [
            {
                "fileUrl": self.file_url(entry),
                "fileType": out.file_type,
                "nodeId": out.node_id,
                "taskCostTime": cost_time,
                "consumeCoins": str(task.cost_coins),
                "consumeMoney": None,
                "thirdPartyConsumeMoney": None,
            }
            for out, entry in zip(task.outputs, task.published)
        ]

    def outputs_reply(self, task: Task, numeric_cost_time: bool = False) -> dict:
        legacy = self.settings.legacy
        if task.status in WAITING:
            if legacy:
                return self.finish({"code": 0, "msg": P.LEGACY_QUEUED_MSG, "data": None})
            return self.error_reply(ApiError(P.APIKEY_TASK_IS_QUEUED))
        if task.status == RUNNING:
            if legacy:
                return self.finish({"code": 0, "msg": P.LEGACY_RUNNING_MSG, "data": None})
            url = self.wss_url(task)
            data = {"netWssUrl": url} if url else None
            return self.error_reply(ApiError(P.APIKEY_TASK_IS_RUNNING, data=data))
        if task.status == FAILED:
            data = {"failedReason": task.failed_reason}
            if legacy:
                return self.finish({"code": P.UNKNOWN_ERROR, "msg": P.LEGACY_FAILED_MSG, "data": data})
            return self.error_reply(ApiError(P.APIKEY_TASK_STATUS_ERROR, data=data))
        return self.ok(self.output_items(task, numeric_cost_time))

    # ------------------------------------------------------------------ endpoints (v1)
    def ep_create(self, body: dict, key: str | None) -> dict:
        account = self.authenticate(key)
        task = self.create_task(account, kind="workflow", target_id=body.get("workflowId"), body=body)
        return self.ok(self.create_reply_data(task))

    def ep_ai_app_run(self, body: dict, key: str | None) -> dict:
        account = self.authenticate(key)
        task = self.create_task(account, kind="ai-app", target_id=body.get("webappId"), body=body)
        return self.ok(self.create_reply_data(task))

    def ep_outputs(self, body: dict, key: str | None) -> dict:
        account = self.authenticate(key)
        task = self.own_task(account, self.task_id_param(body))
        return self.outputs_reply(task)

    def ep_status(self, body: dict, key: str | None) -> dict:
        account = self.authenticate(key)
        task = self.own_task(account, self.task_id_param(body))
        return self.ok(task.status)

    def ep_cancel(self, body: dict, key: str | None) -> dict:
        account = self.authenticate(key)
        task = self.own_task(account, self.task_id_param(body))
        self.tasks.cancel(task)
        return self.ok(None)

    def ep_account_status(self, body: dict, key: str | None) -> dict:
        account = self.authenticate(key, "apikey")
        with self.tasks.lock:
            current = self.tasks.running_count(account.key) + self.tasks.queued_count(account.key)
        coins = account.coins
        data = {
            "remainCoins": coins if self.settings.legacy else str(coins),
            "currentTaskCounts": current if self.settings.legacy else str(current),
            "remainMoney": account.money,
            "currency": "USD" if self.site == "ai" else "CNY",
            "apiType": "NORMAL",
        }
        return self.ok(data)

    def ep_get_json_api_format(self, body: dict, key: str | None) -> dict:
        self.authenticate(key)
        workflow_id = body.get("workflowId")
        if workflow_id in (None, "") or isinstance(workflow_id, (bool, dict, list)):
            raise ApiError(P.PARAMS_INVALID, "workflowId is required")
        graph = self.workflows.load(str(workflow_id))
        return self.ok({"prompt": json.dumps(graph, ensure_ascii=False)})

    def ep_get_webhook_detail(self, body: dict, key: str | None) -> dict:
        account = self.authenticate(key)
        task = self.own_task(account, self.task_id_param(body))
        hook = task.webhook
        if hook is None:
            return self.ok(None)
        return self.ok({
            "taskId": task.task_id,
            "webhookUrl": hook.url,
            "callbackStatus": hook.callback_status,
            "retryCount": hook.retry_count,
            "eventData": hook.event_data,
            "attempts": hook.attempts,
            "createTime": _iso(hook.created),
            "updateTime": _iso(hook.updated),
        })

    def ep_app_demo(self, params: dict, key: str | None) -> dict:
        """GET /api/webapp/apiCallDemo: an AI app's name and the node fields a run may set
        (here every literal input of its graph; on the real service, those its author exposed)."""
        self.authenticate(key)
        webapp_id = str(params.get("webappId") or "").strip()
        if not webapp_id:
            raise ApiError(P.PARAMS_INVALID, "webappId is required")
        graph = self.workflows.load(webapp_id, webapp=True)
        fields = []
        for node_id, node in graph.items():
            title = (node.get("_meta") or {}).get("title") or node["class_type"]
            for name, value in node["inputs"].items():
                if not isinstance(value, list):  # a link is no field a run can set
                    fields.append({"nodeId": str(node_id), "nodeName": node["class_type"], "fieldName": name,
                                   "fieldValue": value, "fieldType": _field_type(node["class_type"], name, value),
                                   "description": title})
        return self.ok({"webappName": f"AI app {webapp_id}", "covers": [], "nodeInfoList": fields})

    def ep_upload(self, fields: dict, key: str | None) -> dict:
        """v1 upload from a parsed multipart form."""
        account = self.authenticate(key)
        if "file" not in fields or fields["file"][0] is None:
            raise ApiError(P.PARAMS_INVALID, "file is required")
        file_type = form_text(fields, "fileType")  # a label only (image, input, lora, file, ...): echoed back
        filename, data = fields["file"]
        name, kind = self.upload(account, data, filename or "", file_type)
        return self.ok({"fileName": name, "fileType": file_type or kind})  # many clients send no fileType

    def upload(self, account: Account, data: bytes, filename: str, file_type: str | None,
               folder: str = "api") -> tuple[str, str]:
        """Stores an upload; returns (fileName, kind)."""
        limit = int(self.settings.max_upload_mb * 1024 * 1024)
        if len(data) > limit:
            log.info("809: file is %d bytes, the limit is %g MB", len(data), self.settings.max_upload_mb)
            raise ApiError(P.APIKEY_FILE_SIZE_EXCEEDED)
        ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if not ext:  # e.g. "blob" or "file" (a browser Blob, requests' bare bytes): by its content
            ext = sniff_extension(data) or ext
        if ext not in UPLOAD_KINDS:
            raise ApiError(P.PARAMS_INVALID,
                           f"unsupported file type {ext or '(none)'!r}; accepted: {', '.join(UPLOAD_KINDS)}")
        if not data:
            raise ApiError(P.PARAMS_INVALID, "file is empty")
        name = self.storage.save_upload(data, ext, account.key, folder)
        log.info("upload by key %s: %s (%d bytes)", redact(account.key), name, len(data))
        return name, UPLOAD_KINDS[ext]

    # ------------------------------------------------------------------ v2
    def v2_run(self, account: Account, kind: str, target_id: str, body: dict) -> dict:
        task = self.create_task(account, kind="ai-app" if kind == "ai-app" else "workflow", target_id=target_id,
                                body=body, api="v2")
        view = self.v2_task_view(task)
        return {k: view[k] for k in ("taskId", "status", "errorCode", "errorMessage", "results", "clientId",
                                     "promptTips")}

    def v2_upload(self, account: Account, fields: dict) -> dict:
        if "file" not in fields or fields["file"][0] is None:
            raise ApiError(P.PARAMS_INVALID, "file is required")
        filename, data = fields["file"]
        name, kind = self.upload(account, data, filename, None, folder="openapi")  # as the real service names it
        entry = self.storage.publish(self.storage.resolve_input(name), None, name.split("/")[-1])
        return {"code": 0, "message": "success", "data": {
            "type": kind, "download_url": self.file_url(entry), "fileName": name, "size": str(len(data)),
        }}

    def v2_task_view(self, task: Task) -> dict:
        status = "CANCEL" if task.cancelled else task.status
        results = None
        if task.status == SUCCESS:
            results = [
                {"url": self.file_url(entry), "outputType": out.file_type,
                 "text": out.text, "nodeId": out.node_id}
                for out, entry in zip(task.outputs, task.published)
            ]
        usage = None
        if task.status in (SUCCESS, FAILED):
            usage = {"consumeCoins": str(task.cost_coins), "taskCostTime": str(task.cost_time),
                     "consumeMoney": None, "thirdPartyConsumeMoney": None}
        return {
            "taskId": task.task_id, "status": status,
            "errorCode": "" if task.status != FAILED else ("" if task.cancelled else "1005"),
            "errorMessage": "" if task.failed_reason is None else task.failed_reason.get("exception_message", ""),
            "failedReason": task.failed_reason or {}, "usage": usage, "results": results,
            "clientId": task.client_id, "promptTips": P.dumps(task.prompt_tips),
        }


def v2_error(err: ApiError, task_id: str = "") -> dict:
    return {"taskId": task_id, "status": "FAILED", "errorCode": P.V2_CODES.get(err.code, "1000"),
            "errorMessage": err.msg, "failedReason": None, "usage": None, "results": None,
            "clientId": "", "promptTips": (err.data or {}).get("promptTips", "") if isinstance(err.data, dict) else ""}


_MEDIA_FIELDS = {("LoadImage", "image"): "IMAGE", ("LoadImageMask", "image"): "IMAGE", ("LoadAudio", "audio"): "AUDIO",
                 ("LoadVideo", "file"): "VIDEO", ("VHS_LoadVideo", "video"): "VIDEO"}


def _field_type(class_type: str, name: str, value: Any) -> str:
    """An apiCallDemo `fieldType`: IMAGE / AUDIO / VIDEO for a loader's file, else the value's type."""
    if (class_type, name) in _MEDIA_FIELDS:
        return _MEDIA_FIELDS[(class_type, name)]
    if isinstance(value, bool):
        return "BOOLEAN"
    return {int: "INT", float: "FLOAT"}.get(type(value), "STRING")


def v2_unreadable_query() -> dict:
    """v2 query of a task id that is not a number, as the real service answers it (a client
    that checks its key with a dummy id reads this)."""
    return {"taskId": "", "status": "", "errorCode": "1007", "errorMessage": "failed to parse request body",
            "failedReason": {}, "usage": None, "results": None, "clientId": "", "promptTips": "",
            "parentTaskId": None, "taskUsageList": None}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))
