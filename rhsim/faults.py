"""Switchable transport faults for the next N calls of an endpoint (or of file downloads)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# kind -> what it does (the names are the public hook API)
FAULT_KINDS = {
    "http_error": "HTTP error status (default 503) instead of the reply; params: status, retry_after, commit",
    "reset_before": "connection reset (RST) before replying; the request is not performed",
    "reset_after_commit": "the request is performed (a create is made and billed), then the connection "
                          "is reset without a reply",
    "reset_mid_body": "headers and part of the body are sent, then the connection is reset; "
                      "params: fraction (default 0.5) or bytes; the request is performed",
    "slow_body": "the reply is dribbled out; params: chunk (bytes, default 16), delay (s, default 0.05)",
    "delay": "the reply is held back; params: seconds (default 1.0), commit (default true)",
    "malformed_json": "HTTP 200 with a truncated JSON body; params: commit",
    "html_502": "HTTP 502 with an nginx gateway HTML page; params: commit",
    "html_200": "HTTP 200 with an HTML page instead of JSON; params: commit",
    "expired": "HTTP 404, as an expired output URL (meant for `files`)",
    "compressed": "the reply sent with Content-Encoding gzip or deflate (Content-Length of the compressed "
                  "body); params: encoding (default gzip)",
    "api_error": "HTTP 200 with a business error envelope instead of the reply; params: code (required), "
                 "msg (default: the code's name), data (default null), commit (default false)",
}

ENDPOINTS = {
    # name: paths that count as it
    "create": "/task/openapi/create",
    "ai-app/run": "/task/openapi/ai-app/run",
    "outputs": "/task/openapi/outputs",
    "status": "/task/openapi/status",
    "cancel": "/task/openapi/cancel",
    "accountStatus": "/uc/openapi/accountStatus",
    "upload": "/task/openapi/upload",
    "getJsonApiFormat": "/api/openapi/getJsonApiFormat",
    "getWebhookDetail": "/task/openapi/getWebhookDetail",
    "apiCallDemo": "/api/webapp/apiCallDemo",
    "v2/run/workflow": "/openapi/v2/run/workflow/{workflowId}",
    "v2/run/ai-app": "/openapi/v2/run/ai-app/{webappId}",
    "v2/query": "/openapi/v2/query",
    "v2/upload": "/openapi/v2/media/upload/binary",
    "files": "/rh-resource-models/{token}/output/{name}",  # on the output host
    # the native ComfyUI endpoint (--comfyui only)
    "native/prompt": "/proxy/{apiKey}/prompt",
    "native/history": "/proxy/{apiKey}/history",
    "native/view": "/proxy/{apiKey}/view",
    "native/upload": "/proxy/{apiKey}/upload/image",
    "native/object_info": "/proxy/{apiKey}/object_info",
    "native/interrupt": "/proxy/{apiKey}/interrupt",
    "native/queue": "/proxy/{apiKey}/queue",
    "native/system_stats": "/proxy/{apiKey}/system_stats",
}
ANY_API = "*"  # every endpoint except `files`


def endpoint_name(value: str) -> str:
    """Accepts a name from ENDPOINTS, `*`, or a fixed path such as `/task/openapi/create`."""
    if value in ENDPOINTS or value == ANY_API:
        return value
    for name, path in ENDPOINTS.items():
        if path == value:
            return name
    raise ValueError(f"unknown endpoint {value!r}; known: {', '.join(ENDPOINTS)} or '*'")


@dataclass
class Fault:
    endpoint: str
    kind: str
    remaining: int
    params: dict[str, Any] = field(default_factory=dict)
    fired: int = 0

    def as_dict(self) -> dict:
        return {"endpoint": self.endpoint, "kind": self.kind, "remaining": self.remaining,
                "fired": self.fired, "params": self.params}

    @property
    def commits(self) -> bool:
        """Whether the request is performed before the fault shapes the reply."""
        if self.kind in ("reset_after_commit", "reset_mid_body", "slow_body", "compressed"):
            return True
        if self.kind in ("reset_before", "expired"):
            return False
        return bool(self.params.get("commit", self.kind == "delay"))


class FaultBoard:
    def __init__(self):
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, endpoint: str, kind: str, count: int = 1, **params) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if kind == "api_error" and not isinstance(params.get("code"), int):
            raise ValueError("api_error needs an integer `code` param")
        fault = Fault(endpoint_name(endpoint), kind, count, dict(params))
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, endpoint: str) -> Fault | None:
        """The first armed fault for this endpoint, consumed once."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (
                    fault.endpoint == endpoint or (fault.endpoint == ANY_API and endpoint != "files")
                ):
                    fault.remaining -= 1
                    fault.fired += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [f.as_dict() for f in self._faults]
