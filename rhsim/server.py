"""The API host on aiohttp: routing, counting, fault injection, v1 and v2 endpoints; and the
two listeners (API and output host) started together.

Endpoint logic lives in app.py and runs in worker threads (it takes locks and, with the
ComfyUI executor, makes HTTP calls); this module only frames requests and replies."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from . import protocol as P
from .app import SimApp, v2_error, v2_unreadable_query
from .bodies import bearer, form_text, json_object, parse_multipart, read_body
from .files import make_files_app
from .hooks import handle_hook
from .native_proxy import NATIVE, PREFIXES as NATIVE_PREFIXES, NativeProxy, handle_native
from .protocol import ApiError, redact, scrub_path
from .replies import json_reply, send, spring_error
from .websocket import handle_ws, track_sockets

log = logging.getLogger("rhsim.http")

V1_ROUTES = {
    "/task/openapi/create": ("create", "ep_create"),
    "/task/openapi/ai-app/run": ("ai-app/run", "ep_ai_app_run"),
    "/task/openapi/outputs": ("outputs", "ep_outputs"),
    "/task/openapi/status": ("status", "ep_status"),
    "/task/openapi/cancel": ("cancel", "ep_cancel"),
    "/uc/openapi/accountStatus": ("accountStatus", "ep_account_status"),
    "/api/openapi/getJsonApiFormat": ("getJsonApiFormat", "ep_get_json_api_format"),
    "/task/openapi/getWebhookDetail": ("getWebhookDetail", "ep_get_webhook_detail"),
}
V1_UPLOAD = "/task/openapi/upload"
APP_DEMO = "/api/webapp/apiCallDemo"  # GET: an AI app's settable fields (clients call it before ai-app/run)
V1_PREFIXES = ("/task/openapi/", "/uc/openapi/", "/api/openapi/")
V2_RUN_RE = re.compile(r"^/openapi/v2/run/(workflow|ai-app)/([^/]+)$")
V2_QUERY, V2_UPLOAD = "/openapi/v2/query", "/openapi/v2/media/upload/binary"
WORKER_THREADS = 64  # endpoint calls block on locks and the ComfyUI executor; a burst of creates must not queue


def make_api_app(app: SimApp) -> web.Application:
    api = web.Application()

    async def dispatch(request: web.Request) -> web.StreamResponse:
        clean = _normalized(request.path)
        if clean != request.path:
            request = request.clone(rel_url=URL.build(path=clean, query_string=request.query_string, encoded=True))
        try:
            return await route(request, app)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - a simulator bug must still answer, as a 500 does
            log.exception("internal error on %s %s", request.method, scrub_path(request.path))
            return spring_error(500, request.path)

    api.router.add_route("*", "/{tail:.*}", dispatch)
    api.on_response_prepare.append(_server_header)
    track_sockets(api)
    api[NATIVE] = NativeProxy(app) if app.executor.name == "comfyui" else None

    async def close_native(_api: web.Application) -> None:
        if _api[NATIVE] is not None:
            await _api[NATIVE].close()

    api.on_cleanup.append(close_native)
    return api


def _normalized(path: str) -> str:
    """The path as the real service's front (nginx, Spring) treats it: repeated slashes
    merged, a trailing slash dropped (a client whose base URL ends in "/" works)."""
    path = re.sub(r"/{2,}", "/", path)
    return path.rstrip("/") or "/"


async def _server_header(request: web.Request, reply: web.StreamResponse) -> None:
    reply.headers["Server"] = "rhsim"


async def route(request: web.Request, app: SimApp) -> web.StreamResponse:
    path = request.path
    if path.startswith("/__sim__/"):
        return await handle_hook(request, app)
    if path == "/ws" and request.method == "GET":
        return await handle_ws(request, app)
    if (path + "/").startswith(NATIVE_PREFIXES):
        return await handle_native(request, app, request.app[NATIVE])
    if path == APP_DEMO:
        if request.method != "GET":
            await read_body(request)
            return spring_error(405, path, {"Allow": "GET"})
        return await app_demo(request, app)
    if path in V1_ROUTES or path == V1_UPLOAD or V2_RUN_RE.match(path) or path in (V2_QUERY, V2_UPLOAD):
        if request.method != "POST":
            await read_body(request)
            return spring_error(405, path, {"Allow": "POST"})
        if path == V1_UPLOAD:
            return await v1_upload(request, app)
        if path in V1_ROUTES:
            return await v1_call(request, app)
        return await v2_call(request, app)
    await read_body(request)
    app.count("unmatched", None)
    if path.startswith(V1_PREFIXES):
        return json_reply(200, app.error_reply(ApiError(P.TOKEN_INVALID)))
    return spring_error(404, path)


async def _reply(request: web.Request, app: SimApp, payload: dict, fault, envelope=None) -> web.StreamResponse:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return await send(request, 200, body, "application/json", fault=fault, envelope=envelope or app.finish)


async def _fault_before(request: web.Request, app: SimApp, endpoint: str, envelope=None):
    """(fault, early reply): a fault that does not perform the request answers at once."""
    fault = app.faults.take(endpoint)
    if fault is not None and not fault.commits:
        return fault, await send(request, 200, b"", "application/json", fault=fault,
                                 envelope=envelope or app.finish)
    return fault, None


# ---------------------------------------------------------------------- v1
async def _v1_answer(request: web.Request, app: SimApp, endpoint: str, key: str | None,
                     call: Callable[[], dict]) -> web.StreamResponse:
    """The one reply path of the v1-style endpoints: count the call, take its fault, run
    `call()` in a thread (an ApiError becomes v1's error reply), log, send."""
    app.count(endpoint, key)
    fault, early = await _fault_before(request, app, endpoint)
    if early is not None:
        return early

    def perform() -> dict:
        try:
            return call()
        except ApiError as err:
            return app.error_reply(err)

    reply = await asyncio.to_thread(perform)
    log.info("%s key=%s -> %s", endpoint, redact(key), reply.get("code"))
    return await _reply(request, app, reply, fault)


async def v1_call(request: web.Request, app: SimApp) -> web.StreamResponse:
    endpoint, method = V1_ROUTES[request.path]
    raw = await read_body(request)
    try:
        body, parse_error = json_object(raw), None
    except ApiError as err:
        body, parse_error = {}, err
    key_param = "apikey" if endpoint == "accountStatus" else "apiKey"
    key = body.get(key_param) if isinstance(body.get(key_param), str) and body.get(key_param) else None
    key = key or bearer(request)

    def call() -> dict:
        if parse_error:
            raise parse_error
        return getattr(app, method)(body, key)

    return await _v1_answer(request, app, endpoint, key, call)


async def app_demo(request: web.Request, app: SimApp) -> web.StreamResponse:
    """GET /api/webapp/apiCallDemo?apiKey=…&webappId=… (the key may also come as Bearer)."""
    key = request.query.get("apiKey") or request.query.get("apikey") or bearer(request)
    return await _v1_answer(request, app, "apiCallDemo", key, lambda: app.ep_app_demo(dict(request.query), key))


def _upload_limit(app: SimApp) -> int:
    return int(app.settings.max_upload_mb * 1024 * 1024) + (1 << 20)


async def v1_upload(request: web.Request, app: SimApp) -> web.StreamResponse:
    raw = await read_body(request, _upload_limit(app))
    fields, error = {}, None
    if raw is None:
        log.info("809: the upload is over the limit of %g MB", app.settings.max_upload_mb)
        error = ApiError(P.APIKEY_FILE_SIZE_EXCEEDED)
    else:
        try:
            fields = parse_multipart(raw, request.headers.get("Content-Type", ""))
        except ApiError as err:
            error = err
    key = form_text(fields, "apiKey") or request.query.get("apiKey") or request.query.get("apikey") or bearer(request)

    def call() -> dict:
        if error:
            raise error
        return app.ep_upload(fields, key)

    return await _v1_answer(request, app, "upload", key, call)


# ---------------------------------------------------------------------- v2
async def v2_call(request: web.Request, app: SimApp) -> web.StreamResponse:
    path = request.path
    run = V2_RUN_RE.match(path)
    endpoint = f"v2/run/{run.group(1)}" if run else ("v2/query" if path == V2_QUERY else "v2/upload")
    key = bearer(request)
    is_upload = endpoint == "v2/upload"
    raw = await read_body(request, _upload_limit(app) if is_upload else None)
    app.count(endpoint, key)
    envelope = _v2_upload_envelope if is_upload else _v2_envelope
    fault, early = await _fault_before(request, app, endpoint, envelope)
    if early is not None:
        return early
    content_type = request.headers.get("Content-Type", "")

    def perform() -> dict:
        task_id = ""
        try:
            try:
                account = app.authenticate(key, "Authorization")
            except ApiError as err:
                if is_upload:  # the upload's own shape in the API docs
                    return {"code": 401, "message": "ApiKey verification failed: API Key不存在", "data": None}
                raise ApiError(P.APIKEY_UNAUTHORIZED, "invalid api key") from err
            if is_upload:
                if raw is None:
                    raise ApiError(P.APIKEY_FILE_SIZE_EXCEEDED)
                return app.v2_upload(account, parse_multipart(raw, content_type))
            body = json_object(raw)
            if run:
                return app.v2_run(account, run.group(1), run.group(2), body)
            task_id = app.task_id_param(body)
            if not task_id.isdigit():  # a task id is a number: the real service cannot read the body
                return v2_unreadable_query()
            return app.v2_task_view(app.own_task(account, task_id))
        except ApiError as err:
            return _v2_upload_error(err) if is_upload else v2_error(err, task_id)

    reply = await asyncio.to_thread(perform)
    return await _reply(request, app, reply, fault, envelope)


def _v2_code(code: int) -> str:
    """A v2 error code for a v1 code, or a fault's own v2 code (1000–1999) as it is."""
    return str(code) if 1000 <= code < 2000 else P.V2_CODES.get(code, "1000")


def _v2_upload_error(err: ApiError) -> dict:
    return {"code": int(_v2_code(err.code)), "message": err.msg, "data": None}


def _v2_envelope(v1: dict) -> dict:
    """An `api_error` fault on a v2 endpoint, in v2's shape (a string errorCode)."""
    return {**v2_error(ApiError(v1["code"], v1["msg"], v1.get("data"))), "errorCode": _v2_code(v1["code"])}


def _v2_upload_envelope(v1: dict) -> dict:
    return _v2_upload_error(ApiError(v1["code"], v1["msg"]))


# ---------------------------------------------------------------------- listeners
@dataclass
class Listeners:
    """The running API host and output host."""

    runner: web.AppRunner
    files_runner: web.AppRunner

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.files_runner.cleanup()


async def _listen(web_app: web.Application, host: str, port: int,
                  public_host: str | None = None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=128, reuse_address=True)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = public_host or ("127.0.0.1" if bound_host in ("0.0.0.0", "::") else bound_host)
    shown = f"[{shown}]" if ":" in shown else shown
    return runner, f"http://{shown}:{bound_port}"


async def start_listeners(app: SimApp, host: str, port: int, files_port: int = 0,
                          public_host: str | None = None) -> Listeners:
    """Starts the API host on `port` and the output host on `files_port` (0: any free port),
    both on `host`, and tells `app` their addresses (replies use them, never a Host header):
    `public_host` names the machine in those addresses (for clients on other machines or in
    containers); bound to every interface without it, they say 127.0.0.1.

    Every accepted socket has TCP_NODELAY on (asyncio sets it on TCP transports): with Nagle
    on, each request on a kept-alive connection waited ~40 ms for a delayed ACK."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(WORKER_THREADS, "rhsim-worker"))
    runner, app.base_url = await _listen(make_api_app(app), host, port, public_host)
    files_runner, app.files_base_url = await _listen(make_files_app(app), host, files_port, public_host)
    return Listeners(runner, files_runner)
