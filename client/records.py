"""Typed records for what RunningHub returns, parsed leniently (every drift shape).

Numbers may come as strings or numbers; ids as strings or ints; promptTips and
tracebacks as JSON inside strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import FailureReason


def as_int(value: Any, default: int | None = None) -> int | None:
    """`"17"`, `17`, `17.0` → 17; None, "" or junk → default."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def as_float(value: Any, default: float | None = None) -> float | None:
    if value is None or isinstance(value, bool):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def as_id(value: Any) -> str | None:
    """Task ids are 19-digit numbers sent as strings; accept ints too."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def json_in_string(value: Any) -> Any:
    """Decode a JSON document carried inside a string; pass anything else through."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


class TaskState(str, Enum):
    """A task's state as the pack uses it. RunningHub's `CREATE` (the task exists but is not
    queued yet) is read as QUEUED: nothing about it differs for a client."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCEL = "CANCEL"

    @classmethod
    def parse(cls, value: Any) -> "TaskState":
        text = str(value or "").strip().upper()
        if text in ("CANCELED", "CANCELLED"):
            return cls.CANCEL
        if text == "CREATE":
            return cls.QUEUED
        try:
            return cls(text)
        except ValueError:
            return cls.RUNNING if text else cls.QUEUED

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCESS, TaskState.FAILED, TaskState.CANCEL)


@dataclass(frozen=True)
class PromptTips:
    ok: bool = True
    error: Any = None
    outputs_to_execute: list[str] = field(default_factory=list)
    node_errors: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> "PromptTips":
        data = json_in_string(raw)
        if not isinstance(data, dict):
            return cls()
        result = data.get("result", True)
        ok = result if isinstance(result, bool) else str(result).lower() != "false"
        node_errors = data.get("node_errors") or {}
        return cls(ok=ok and not node_errors, error=data.get("error"),
                   outputs_to_execute=[str(x) for x in data.get("outputs_to_execute") or []],
                   node_errors=node_errors if isinstance(node_errors, dict) else {})


@dataclass(frozen=True)
class TaskHandle:
    """A created task. `key_hint` is the redacted key that created it (outputs, status and
    cancel must use that same key)."""

    task_id: str
    state: TaskState = TaskState.QUEUED
    client_id: str | None = None
    prompt_tips: PromptTips = field(default_factory=PromptTips)
    net_wss_url: str | None = field(default=None, repr=False)  # may carry tokens: never in a repr

    @classmethod
    def parse(cls, data: Any) -> "TaskHandle":
        if not isinstance(data, dict) or as_id(data.get("taskId")) is None:
            raise ValueError("create reply has no taskId")
        return cls(task_id=as_id(data["taskId"]),
                   state=TaskState.parse(data.get("taskStatus") or data.get("status") or "QUEUED"),
                   client_id=as_id(data.get("clientId")),
                   prompt_tips=PromptTips.parse(data.get("promptTips")),
                   net_wss_url=data.get("netWssUrl") or None)


@dataclass(frozen=True)
class TaskOutput:
    """One output file of a finished task (one per file of each save node)."""

    url: str | None
    file_type: str  # extension as RunningHub reports it: png, mp4, wav, txt ...
    node_id: str | None
    text: str | None = None  # v2 returns text outputs inline

    @classmethod
    def parse(cls, item: dict) -> "TaskOutput":
        url = item.get("fileUrl") or item.get("url")
        file_type = str(item.get("fileType") or item.get("outputType") or "").lower().lstrip(".")
        if not file_type and url:
            tail = url.split("?", 1)[0].rsplit("/", 1)[-1]
            file_type = tail.rsplit(".", 1)[-1].lower() if "." in tail else ""
        return cls(url=url, file_type=file_type, node_id=as_id(item.get("nodeId")),
                   text=item.get("text"))


@dataclass(frozen=True)
class TaskCost:
    """Task-level cost and time, repeated on every output item: read once, sum nothing."""

    seconds: float | None = None
    coins: float | None = None
    money: float | None = None
    third_party_money: float | None = None

    @classmethod
    def parse(cls, item: dict | None) -> "TaskCost":
        item = item or {}
        return cls(seconds=as_float(item.get("taskCostTime")), coins=as_float(item.get("consumeCoins")),
                   money=as_float(item.get("consumeMoney")),
                   third_party_money=as_float(item.get("thirdPartyConsumeMoney")))

    def describe(self) -> str:
        parts = []
        if self.coins is not None:
            parts.append(f"{self.coins:g} coins")
        if self.money is not None:
            parts.append(f"{self.money:g} money")
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        return ", ".join(parts)


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    outputs: list[TaskOutput]
    cost: TaskCost


def parse_failure_reason(data: Any, msg: str = "") -> FailureReason:
    """data.failedReason of an 805 (or legacy 500) reply; tolerant of missing parts."""
    reason = data.get("failedReason") if isinstance(data, dict) else None
    reason = json_in_string(reason)
    if not isinstance(reason, dict):
        text = reason if isinstance(reason, str) and reason else (msg or None)
        return FailureReason(raw_message=text)
    tb = json_in_string(reason.get("traceback"))
    if isinstance(tb, list):
        lines = [str(x).rstrip() for x in tb]
    elif isinstance(tb, str):
        lines = tb.splitlines()
    else:
        lines = []
    tail = [ln for ln in "\n".join(lines).splitlines() if ln.strip()][-6:]
    return FailureReason(node_id=as_id(reason.get("node_id")), node_name=reason.get("node_name") or None,
                         exception_type=reason.get("exception_type") or None,
                         exception_message=(str(reason.get("exception_message")).strip()
                                            if reason.get("exception_message") is not None else None),
                         traceback_tail=tail, raw_message=msg or None)


@dataclass(frozen=True)
class AccountStatus:
    remain_coins: float | None
    current_task_counts: int | None
    remain_money: float | None
    currency: str | None
    api_type: str | None

    @classmethod
    def parse(cls, data: Any) -> "AccountStatus":
        if not isinstance(data, dict):
            raise ValueError("account status reply has no data object")
        return cls(remain_coins=as_float(data.get("remainCoins")),
                   current_task_counts=as_int(data.get("currentTaskCounts")),
                   remain_money=as_float(data.get("remainMoney")),
                   currency=data.get("currency") or None, api_type=data.get("apiType") or None)


@dataclass(frozen=True)
class UploadedFile:
    """`file_name` (e.g. `api/<sha256>.png`) is what a remote Load* field takes; not a URL."""

    file_name: str
    file_type: str | None = None
    download_url: str | None = None

    @classmethod
    def parse(cls, data: Any) -> "UploadedFile":
        if not isinstance(data, dict) or not data.get("fileName"):
            raise ValueError("upload reply has no fileName")
        return cls(file_name=str(data["fileName"]), file_type=data.get("fileType") or data.get("type"),
                   download_url=data.get("download_url"))
