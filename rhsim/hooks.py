"""The `/__sim__/` test hooks: counts, tasks, settings, faults. Never counted, never faulted."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

from aiohttp import web

from .app import SimApp
from .bodies import read_body
from .faults import ENDPOINTS, FAULT_KINDS
from .replies import json_reply

log = logging.getLogger("rhsim.hooks")


class HookError(Exception):
    """A bad hook request: answered HTTP 400 with the reason."""


async def handle_hook(request: web.Request, app: SimApp) -> web.Response:
    raw = await read_body(request)
    try:
        payload = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        if not isinstance(payload, dict):
            raise HookError("body must be a JSON object")
        result = await asyncio.to_thread(hook_result, app, request.method, request.path, request.query, payload)
    except (HookError, ValueError, TypeError) as exc:
        return json_reply(400, {"error": str(exc)})
    if result is None:
        return json_reply(404, {"error": f"no hook {request.method} {request.path}"})
    if request.path == "/__sim__/health":
        result["tcpNoDelay"] = _no_delay(request)
    return json_reply(200, result)


def _no_delay(request: web.Request) -> bool:
    """Whether Nagle is off on this very connection (what clients' latency depends on)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return bool(sock is not None and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def hook_result(app: SimApp, cmd: str, path: str, query, payload: dict):
    """The hook's answer, or None when there is no such hook."""
    name = path[len("/__sim__/"):]
    if name == "health" and cmd == "GET":
        return {"ok": True, "site": app.site, "executor": app.executor.name, "baseUrl": app.base_url,
                "filesBaseUrl": app.files_base_url}
    if name == "counts" and cmd == "GET":
        return app.counts()
    if name == "reset" and cmd == "POST":
        what = payload.get("what", ["counts"])
        what = [what] if isinstance(what, str) else what
        app.reset(what)
        return {"ok": True, "reset": what}
    if name == "tasks" and cmd == "GET":
        tasks = [t.summary() for t in app.tasks.all()]
        wanted = query.getall("status", [])
        return [t for t in tasks if t["status"] in wanted] if wanted else tasks
    if name.startswith("tasks/") and cmd == "GET":
        task = app.tasks.get(name.rsplit("/", 1)[-1])
        if task is None:
            raise HookError("no such task")
        return {**task.summary(), "graph": task.graph, "promptTips": task.prompt_tips}
    if name == "config" and cmd in ("GET", "POST"):
        return app.config_view() if cmd == "GET" else app.configure(payload)
    if name == "faults" and cmd in ("GET", "POST", "DELETE"):
        return _faults(app, cmd, payload)
    if name == "faults/clear" and cmd == "POST":
        return _faults(app, "DELETE", payload)
    if name == "expire" and cmd == "POST":
        task = app.tasks.get(str(payload.get("taskId", "")))
        if task is None:
            raise HookError("no such task")
        for entry in task.published:
            entry.expired = True
        return {"ok": True, "expired": len(task.published)}
    if name == "workflows" and cmd == "GET":
        return {"workflows": app.workflows.ids()}
    return None


def _faults(app: SimApp, cmd: str, payload: dict):
    if cmd == "GET":
        return {"faults": app.faults.list(), "kinds": FAULT_KINDS, "endpoints": ENDPOINTS}
    if cmd == "DELETE":
        app.faults.clear()
        return {"ok": True}
    params = dict(payload.get("params") or {})
    fault = app.faults.add(payload.get("endpoint", ""), payload.get("kind", ""), int(payload.get("count", 1)), **params)
    log.info("fault armed: %s x%d on %s", fault.kind, fault.remaining, fault.endpoint)
    return fault.as_dict()
