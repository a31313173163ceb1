"""One method per RunningHub endpoint, for one site and one key.

Methods return typed records or raise the exceptions of `errors`. A task's outputs,
status and cancel must use the key that created it: keep the client that created it.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import codes
from .credentials import ApiKey
from .errors import (ProtocolError, RunningHubError, ServerError, SubmissionUncertainError, TaskCancelledError,
                     TaskFailedError, ValidationFailedError)
from .overrides import NodeOverride
from .records import (AccountStatus, PromptTips, TaskCost, TaskHandle, TaskOutput, TaskResult, TaskState,
                      UploadedFile, as_id, parse_failure_reason)
from .redact import scrub
from .sites import Site
from .transport import Envelope, RetryPolicy, Timeouts, Transport

log = logging.getLogger("runninghub_bridge.client")

UPLOAD_FILE_TYPES = ("image", "video", "audio", "input")


@dataclass(frozen=True)
class OutputsState:
    """What one outputs poll says: a state, and the result once SUCCESS."""

    state: TaskState
    result: TaskResult | None = None
    failure: TaskFailedError | None = None
    net_wss_url: str | None = field(default=None, repr=False)  # a running task's websocket (804 data): hostile


class RunningHubClient:
    def __init__(self, site: Site, key: ApiKey, *, transport: Transport | None = None,
                 timeouts: Timeouts | None = None, retry: RetryPolicy | None = None):
        self.site = site
        self.key = key
        self.transport = transport or Transport(site, timeouts=timeouts, retry=retry)

    def __repr__(self) -> str:
        return f"RunningHubClient({self.site.host}, {self.key.hint})"

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, path: str, body: dict, *, operation: str, repeatable: bool = True,
              key_field: str = "apiKey") -> Envelope:
        payload = {key_field: self.key.secret, **body}
        return self.transport.call(path, key=self.key, json_body=payload, repeatable=repeatable,
                                   operation=operation)

    def _error(self, env: Envelope, operation: str, task_id: str | None = None) -> RunningHubError:
        return codes.error_for(env.code, env.msg, env.data, site=self.site, key_hint=self.key.hint,
                               keys=(self.key.secret,), operation=operation, task_id=task_id)

    def _expect_ok(self, env: Envelope, operation: str, task_id: str | None = None) -> Any:
        if env.code != 0:
            raise self._error(env, operation, task_id)
        return env.data

    # -- tasks ------------------------------------------------------------------------------

    def create_task(self, workflow_id: str, overrides: Iterable[NodeOverride] = (), *,
                    instance_type: str | None = None, use_personal_queue: bool | None = None,
                    webhook_url: str | None = None, add_metadata: bool | None = None,
                    workflow_json: dict | str | None = None) -> TaskHandle:
        """POST /task/openapi/create. Never resubmitted after an ambiguous failure."""
        body: dict[str, Any] = {"workflowId": str(workflow_id).strip()}
        entries = [o.to_wire() for o in overrides]
        if entries:
            body["nodeInfoList"] = entries
        if instance_type and instance_type != "default":
            body["instanceType"] = instance_type
        if use_personal_queue is not None:
            body["usePersonalQueue"] = bool(use_personal_queue)
        if webhook_url:
            body["webhookUrl"] = webhook_url
        if add_metadata is not None:
            body["addMetadata"] = bool(add_metadata)
        if workflow_json is not None:
            body["workflow"] = workflow_json if isinstance(workflow_json, str) else json.dumps(workflow_json)
        env = self._call("/task/openapi/create", body, operation=f"create (workflow {workflow_id})",
                         repeatable=False)
        return self._task_from_reply(env, f"create (workflow {workflow_id})")

    def run_ai_app(self, webapp_id: str | int, overrides: Iterable[NodeOverride] = (), *,
                   instance_type: str | None = None, webhook_url: str | None = None) -> TaskHandle:
        """POST /task/openapi/ai-app/run. Never resubmitted after an ambiguous failure."""
        webapp = str(webapp_id).strip()
        body: dict[str, Any] = {"webappId": int(webapp) if webapp.isdigit() else webapp,
                                "nodeInfoList": [o.to_wire() for o in overrides]}
        if instance_type and instance_type != "default":
            body["instanceType"] = instance_type
        if webhook_url:
            body["webhookUrl"] = webhook_url
        env = self._call("/task/openapi/ai-app/run", body, operation=f"AI app run (app {webapp})",
                         repeatable=False)
        return self._task_from_reply(env, f"AI app run (app {webapp})")

    def _task_from_reply(self, env: Envelope, operation: str) -> TaskHandle:
        if env.code == 500:  # an internal error says nothing about whether the task was made
            raise SubmissionUncertainError.after(f"RunningHub {operation} answered 500 {env.msg}".rstrip(),
                                                 host=self.site.host, site=self.site.name)
        if env.code == 433:
            tips = PromptTips.parse(env.data.get("promptTips") if isinstance(env.data, dict) else None)
            raise ValidationFailedError(
                f"RunningHub {operation} failed: 433 the remote ComfyUI rejected the graph: "
                f"{describe_node_errors(tips.node_errors) or scrub(env.msg)}. Fix the listed node inputs "
                "(check the RH Node Override values) and queue again.",
                node_errors=tips.node_errors, code=433, site=self.site.name)
        data = self._expect_ok(env, operation)
        try:
            handle = TaskHandle.parse(data)
        except ValueError:
            raise ProtocolError(f"RunningHub {operation} answered success without a task id; "
                                "a task may exist: check the task list on the website.",
                                site=self.site.name) from None
        # With a task id the task exists, node errors or not (ComfyUI queues a prompt whose other
        # outputs are valid): the caller follows it and says what was rejected (rejected_outputs).
        log.info("created task %s on %s with key %s", handle.task_id, self.site.host, self.key.hint)
        return handle

    def outputs(self, task_id: str) -> OutputsState:
        """POST /task/openapi/outputs, read as a state (every drift shape of the protocol page)."""
        task_id = as_id(task_id)
        env = self._call("/task/openapi/outputs", {"taskId": task_id}, operation="outputs")
        data = env.data
        if env.code == 0:
            if isinstance(data, list):
                items = [d for d in data if isinstance(d, dict)]
                outputs = [TaskOutput.parse(d) for d in items]
                cost = TaskCost.parse(items[0] if items else None)
                return OutputsState(TaskState.SUCCESS, result=TaskResult(task_id, outputs, cost))
            if isinstance(data, dict) and data.get("failedReason"):
                return OutputsState(TaskState.FAILED, failure=self._failure(env, task_id))
            return OutputsState(TaskState.RUNNING)  # legacy: code 0 + data null while running
        if env.code == codes.TASK_RUNNING:
            url = data.get("netWssUrl") if isinstance(data, dict) else None
            return OutputsState(TaskState.RUNNING, net_wss_url=url if isinstance(url, str) else None)
        if env.code == codes.TASK_QUEUED:
            return OutputsState(TaskState.QUEUED)
        if env.code == codes.TASK_FAILED:
            return OutputsState(TaskState.FAILED, failure=self._failure(env, task_id))
        if env.code == 500:
            # Legacy failure shape, or a real server error: the failure reason or the
            # status endpoint decides.
            if isinstance(data, dict) and data.get("failedReason"):
                return OutputsState(TaskState.FAILED, failure=self._failure(env, task_id))
            if self.status(task_id) in (TaskState.FAILED, TaskState.CANCEL):
                return OutputsState(TaskState.FAILED, failure=self._failure(env, task_id))
            raise ServerError(f"RunningHub outputs failed: 500 {scrub(env.msg)} (task {task_id}). "
                              "RunningHub had an internal error; try again later.", code=500, task_id=task_id,
                              site=self.site.name)
        raise self._error(env, "outputs", task_id)

    def _failure(self, env: Envelope, task_id: str) -> TaskFailedError:
        reason = parse_failure_reason(env.data, scrub(env.msg))
        text = " ".join(filter(None, [reason.exception_type, reason.exception_message, reason.raw_message])).lower()
        cls = TaskCancelledError if ("cancel" in text or "interrupt" in text) else TaskFailedError
        if cls is TaskCancelledError:
            message = f"RunningHub task {task_id} was cancelled."
        else:
            message = f"RunningHub task {task_id} failed at {reason.describe()}"
            if reason.traceback_tail:
                message += "\nRemote traceback (last lines):\n" + "\n".join(reason.traceback_tail)
        return cls(message, reason=reason, code=env.code, task_id=task_id, site=self.site.name)

    def status(self, task_id: str) -> TaskState:
        """POST /task/openapi/status → a bare state string (or an object holding one)."""
        task_id = as_id(task_id)
        env = self._call("/task/openapi/status", {"taskId": task_id}, operation="status")
        data = self._expect_ok(env, "status", task_id)
        if isinstance(data, dict):
            data = data.get("taskStatus") or data.get("status")
        if not isinstance(data, str) or not data:
            raise ProtocolError(f"RunningHub status for task {task_id} had no state: {str(data)[:80]!r}",
                                task_id=task_id, site=self.site.name)
        return TaskState.parse(data)

    def cancel(self, task_id: str) -> None:
        """POST /task/openapi/cancel (the only cancel; v2 has none)."""
        task_id = as_id(task_id)
        env = self._call("/task/openapi/cancel", {"taskId": task_id}, operation="cancel")
        self._expect_ok(env, "cancel", task_id)
        log.info("cancelled task %s", task_id)

    # -- account, files, workflows ------------------------------------------------------

    def account_status(self) -> AccountStatus:
        """POST /uc/openapi/accountStatus (its key field is lower-case `apikey`)."""
        env = self._call("/uc/openapi/accountStatus", {}, operation="account status", key_field="apikey")
        data = self._expect_ok(env, "account status")
        try:
            return AccountStatus.parse(data)
        except ValueError as exc:
            raise ProtocolError(f"RunningHub account status: {exc}", site=self.site.name) from None

    def upload(self, data: bytes, file_name: str, file_type: str, *, content_type: str | None = None) -> UploadedFile:
        """POST /task/openapi/upload (multipart). Repeatable: an upload is content-addressed."""
        if file_type not in UPLOAD_FILE_TYPES:
            raise ValueError(f"file_type must be one of {UPLOAD_FILE_TYPES}, got {file_type!r}")
        files = {"file": (file_name, io.BytesIO(data), content_type or "application/octet-stream")}
        form = {"apiKey": self.key.secret, "fileType": file_type}
        env = self.transport.call("/task/openapi/upload", key=self.key, files=files, form=form, repeatable=True,
                                  operation=f"upload of {file_name}",
                                  read_timeout=self.transport.timeouts.upload_read)
        if env.code == 809:
            raise self._error(env, f"upload of {file_name} ({len(data) / 1e6:.1f} MB)")
        payload = self._expect_ok(env, f"upload of {file_name}")
        try:
            return UploadedFile.parse(payload)
        except ValueError as exc:
            raise ProtocolError(f"RunningHub upload of {file_name}: {exc}", site=self.site.name) from None

    def workflow_api_json(self, workflow_id: str) -> dict:
        """POST /api/openapi/getJsonApiFormat → the API-format workflow as a dict."""
        workflow_id = str(workflow_id).strip()
        env = self._call("/api/openapi/getJsonApiFormat", {"workflowId": workflow_id},
                         operation=f"getJsonApiFormat (workflow {workflow_id})")
        data = self._expect_ok(env, f"getJsonApiFormat (workflow {workflow_id})")
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if isinstance(prompt, str):
            try:
                prompt = json.loads(prompt)
            except ValueError:
                prompt = None
        if not isinstance(prompt, dict):
            raise ProtocolError(f"RunningHub returned no API-format JSON for workflow {workflow_id}.",
                                site=self.site.name)
        return prompt

    def webhook_detail(self, task_id: str) -> Any:
        env = self._call("/task/openapi/getWebhookDetail", {"taskId": as_id(task_id)}, operation="webhook detail")
        return self._expect_ok(env, "webhook detail", as_id(task_id))


def rejected_outputs(handle: TaskHandle) -> str | None:
    """What a created task's remote ComfyUI rejected, as a warning; None when nothing was."""
    if not handle.prompt_tips.node_errors:
        return None
    return (f"RunningHub task {handle.task_id} was created, but its ComfyUI rejected part of the graph: "
            f"{describe_node_errors(handle.prompt_tips.node_errors)}. The rest runs (and is billed); fix those "
            "inputs (check the RH Node Override values) for the next run.")


def describe_node_errors(node_errors: dict) -> str:
    """ComfyUI's node_errors → `node 3 (KSampler): seed: Value -1 smaller than min of 0; ...`."""
    parts = []
    for node_id, entry in (node_errors or {}).items():
        if not isinstance(entry, dict):
            parts.append(f"node {node_id}: {entry}")
            continue
        details = [_describe_input_error(err) for err in entry.get("errors") or [] if isinstance(err, dict)]
        parts.append(f"node {node_id} ({entry.get('class_type', '?')}): {'; '.join(details) or 'invalid'}")
    return "; ".join(parts)


def _describe_input_error(err: dict) -> str:
    """`seed: Value -1 smaller than min of 0`: ComfyUI puts the reason in `message` and often
    only the input's name in `details`, so the message leads and details follow when they add."""
    info = err.get("extra_info") or {}
    name = info.get("input_name") if isinstance(info, dict) else None
    message, details = str(err.get("message") or "").strip(), str(err.get("details") or "").strip()
    text = message or details
    if message and details and details != name and details not in message:
        text = f"{message} ({details})"
    return f"{name}: {text}" if name else text
