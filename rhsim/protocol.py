"""Protocol constants and reply builders: the v1 envelope, error codes, v2 shapes."""

from __future__ import annotations

import json
import re
from typing import Any

# v1 business codes (all sent with HTTP 200).
SUCCESS = 0
PARAMS_INVALID = 301
WORKFLOW_NOT_EXISTS = 380
TOKEN_INVALID = 412
TASK_INSTANCE_MAXED = 415
NOT_ENOUGH_WALLET = 416
TASK_QUEUE_MAXED = 421
TASK_NOT_FOUNED = 423
VALIDATE_PROMPT_FAILED = 433
UNKNOWN_ERROR = 500
APIKEY_UNSUPPORTED_FREE_USER = 801
APIKEY_UNAUTHORIZED = 802
APIKEY_INVALID_NODE_INFO = 803
APIKEY_TASK_IS_RUNNING = 804
APIKEY_TASK_STATUS_ERROR = 805
APIKEY_USER_NOT_FOUND = 806
APIKEY_TASK_NOT_FOUND = 807
APIKEY_UPLOAD_FAILED = 808
APIKEY_FILE_SIZE_EXCEEDED = 809
APIKEY_TASK_IS_QUEUED = 813
WEBAPP_NOT_EXISTS = 901

MESSAGES = {
    SUCCESS: "success",
    PARAMS_INVALID: "PARAMS_INVALID",
    WORKFLOW_NOT_EXISTS: "WORKFLOW_NOT_EXISTS",
    TOKEN_INVALID: "TOKEN_INVALID",
    TASK_INSTANCE_MAXED: "TASK_INSTANCE_MAXED",
    NOT_ENOUGH_WALLET: "TASK_CREATE_FAILED_BY_NOT_ENOUGH_WALLET",
    TASK_QUEUE_MAXED: "TASK_QUEUE_MAXED",
    TASK_NOT_FOUNED: "TASK_NOT_FOUNED",
    VALIDATE_PROMPT_FAILED: "VALIDATE_PROMPT_FAILED",
    UNKNOWN_ERROR: "UNKNOWN_ERROR",
    APIKEY_UNSUPPORTED_FREE_USER: "APIKEY_UNSUPPORTED_FREE_USER",
    APIKEY_UNAUTHORIZED: "APIKEY_UNAUTHORIZED",
    APIKEY_INVALID_NODE_INFO: "APIKEY_INVALID_NODE_INFO",
    APIKEY_TASK_IS_RUNNING: "APIKEY_TASK_IS_RUNNING",
    APIKEY_TASK_STATUS_ERROR: "APIKEY_TASK_STATUS_ERROR",
    APIKEY_USER_NOT_FOUND: "APIKEY_USER_NOT_FOUND",
    APIKEY_TASK_NOT_FOUND: "APIKEY_TASK_NOT_FOUND",
    APIKEY_UPLOAD_FAILED: "APIKEY_UPLOAD_FAILED",
    APIKEY_FILE_SIZE_EXCEEDED: "APIKEY_FILE_SIZE_EXCEEDED",
    APIKEY_TASK_IS_QUEUED: "APIKEY_TASK_IS_QUEUED",
    WEBAPP_NOT_EXISTS: "WEBAPP_NOT_EXISTS",
}

# Messages of the legacy (drifted) replies.
LEGACY_RUNNING_MSG = "任务运行中"
LEGACY_QUEUED_MSG = "任务排队中"
LEGACY_FAILED_MSG = "任务执行失败"

# v2 error codes (strings) for the v1 situations they correspond to.
V2_CODES = {
    PARAMS_INVALID: "1007",
    WORKFLOW_NOT_EXISTS: "1007",
    WEBAPP_NOT_EXISTS: "1007",
    APIKEY_UNAUTHORIZED: "1002",
    APIKEY_USER_NOT_FOUND: "1002",
    APIKEY_UNSUPPORTED_FREE_USER: "1002",
    APIKEY_INVALID_NODE_INFO: "1101",
    VALIDATE_PROMPT_FAILED: "1101",
    TASK_QUEUE_MAXED: "1011",
    NOT_ENOUGH_WALLET: "1000",
    APIKEY_TASK_NOT_FOUND: "1004",
    APIKEY_FILE_SIZE_EXCEEDED: "1008",
    APIKEY_UPLOAD_FAILED: "1005",
    UNKNOWN_ERROR: "1005",
}


class ApiError(Exception):
    """A business error: becomes `{code, msg, data}` with HTTP 200."""

    def __init__(self, code: int, msg: str | None = None, data: Any = None):
        super().__init__(msg or MESSAGES.get(code, "UNKNOWN_ERROR"))
        self.code = code
        self.msg = msg or MESSAGES.get(code, "UNKNOWN_ERROR")
        self.data = data


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def redact(key: str | None) -> str:
    """A key as it may appear in logs and hooks: an ellipsis and the last 4 characters."""
    if not key:
        return "<none>"
    key = str(key)
    return "\u2026" + key[-4:] if len(key) >= 12 else "\u2026"


_PROXY_KEY = re.compile(r"^/(proxy|proxy-plus)/([^/]*)")
_KEY_SHAPED_SEGMENT = re.compile(r"(?<=/)[0-9A-Za-z]{32}(?=/|$)")


def scrub_path(path: str) -> str:
    """A request path as it may appear in logs and error replies: the native endpoint's key
    redacted, and any segment shaped like a RunningHub key (32 letters and digits)."""
    path = _PROXY_KEY.sub(lambda m: f"/{m.group(1)}/" + redact(m.group(2)), path or "")
    return _KEY_SHAPED_SEGMENT.sub(lambda m: redact(m.group(0)), path)
