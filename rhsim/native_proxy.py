"""RunningHub's native ComfyUI endpoint, `/proxy/{apiKey}/…`, relayed to the `--comfyui` ComfyUI.

The key is checked on every request (401), a new prompt takes one of the key's slots (429 when
they are taken, 402 without coins), and a key sees and affects only its own prompts: /history
and /queue are filtered, /interrupt, /queue and /history delete/clear act on its own prompts
only, /view serves only the outputs of its own prompts and its own uploads (and /upload/mask
masks only those), and `/ws?clientId=` carries
only its own prompts' messages (native_ws.py). The upstream ComfyUI knows each (key, clientId)
by a derived clientId; replies are rewritten back. See rhsim/README.md ("Native ComfyUI
endpoint") for routes and error shapes. The key never reaches a log: paths are logged
through `protocol.scrub_path`.

Upstream requests go through one aiohttp ClientSession (kept-alive connections, made on the
event loop by the handlers themselves), `/view` bodies are streamed through, and a prompt's
end is noticed from the upstream socket messages the proxy relays (`executing` null,
`execution_error`, `execution_interrupted`); NativePrompts' slow poll is the fallback."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
import uuid

import aiohttp
from aiohttp import web

from .app import SimApp
from .bodies import form_text, parse_multipart, read_body
from .executors.comfyui import ComfyUIError, file_refs
from .native_prompts import NativePrompts, Refused, error_body
from .native_ws import relay_socket
from .protocol import redact
from .replies import json_reply, reset_connection, send
from .tasks import RUNNING, WAITING

log = logging.getLogger("rhsim.native")

NATIVE = web.AppKey("native_proxy", object)  # the API host's NativeProxy (None without --comfyui)
PREFIXES = ("/proxy/", "/proxy-plus/")  # the 24G and 48G ("plus") machines: one executor here
PASS_HEADERS = ("Content-Type", "Content-Disposition", "Cache-Control")
ANNOTATION = re.compile(r"^(.*) \[(input|output|temp)\]$")

# (method, route) -> counted endpoint name; `*` matches one path segment
ROUTES = {
    ("GET", "object_info"): "native/object_info",
    ("GET", "object_info/*"): "native/object_info",
    ("GET", "prompt"): "native/queue",  # ComfyUI's queue size; native/prompt counts submissions only
    ("POST", "prompt"): "native/prompt",
    ("GET", "history"): "native/history",
    ("GET", "history/*"): "native/history",
    ("POST", "history"): "native/history",  # clear / delete: the key's own finished prompts
    ("GET", "view"): "native/view",
    ("POST", "upload/image"): "native/upload",
    ("POST", "upload/mask"): "native/upload",
    ("POST", "free"): "native/free",  # accepted; the shared machine's models are not the key's to unload
    ("GET", "extensions"): "native/object_info",
    ("GET", "view_metadata/*"): "native/object_info",
    ("POST", "interrupt"): "native/interrupt",
    ("GET", "queue"): "native/queue",
    ("POST", "queue"): "native/queue",
    ("GET", "system_stats"): "native/system_stats",
    ("GET", "features"): "native/system_stats",
    ("GET", "embeddings"): "native/object_info",
    ("GET", "models"): "native/object_info",
    ("GET", "models/*"): "native/object_info",
    ("GET", "ws"): "native/ws",
}
PASSTHROUGH = {"object_info", "system_stats", "features", "embeddings", "models", "extensions", "view_metadata"}
END_MESSAGES = ("execution_success", "execution_error", "execution_interrupted")
SETTLE_SECONDS = 0.2  # after a prompt's end message: the client's own /history read usually ends it first
STREAMED = "rhsim_native_streamed_body"  # request mark: the body is relayed upstream unread
UPSTREAM_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class NativeProxy:
    def __init__(self, app: SimApp):
        self.app = app
        self.executor = app.executor
        self.prompts = NativePrompts(app, app.executor)
        self._session: aiohttp.ClientSession | None = None
        self._settling: set[asyncio.Task] = set()

    async def close(self) -> None:
        self.prompts.stop()
        for task in list(self._settling):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ upstream
    @property
    def session(self) -> aiohttp.ClientSession:
        """The one client session to the upstream ComfyUI (its connections kept alive)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    def _request(self, method: str, path: str, body: bytes | None, headers: dict | None, timeout: float):
        # counted as `native/upstream GET queue` etc.: what the relay asks of its ComfyUI
        self.app.count(f"native/upstream {method} {path.split('?', 1)[0].strip('/').split('/', 1)[0]}", None)
        return self.session.request(method, self.executor.base_url + path, data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10),
                                    allow_redirects=False)

    async def upstream(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                       timeout: float = 60.0) -> tuple[int, dict, bytes]:
        """One request to ComfyUI: (status, reply headers, body); ComfyUIError when unreachable."""
        try:
            async with self._request(method, path, body, headers, timeout) as reply:
                return reply.status, dict(reply.headers), await reply.read()
        except UPSTREAM_ERRORS as exc:
            raise ComfyUIError(f"ComfyUI at {self.executor.base_url} unreachable: {exc!r}") from exc

    async def upstream_json(self, method: str, path: str, payload=None):
        body = None if payload is None else json.dumps(payload).encode()
        status, _headers, data = await self.upstream(method, path, body,
                                                     {"Content-Type": "application/json"} if body else None)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    async def stream_view(self, request: web.Request, query: str) -> web.StreamResponse | None:
        """`/view` streamed through as ComfyUI sends it; None when it is not a 200 (the caller then
        answers as for any other reply). ComfyUIError when unreachable before the reply starts."""
        try:
            async with self._request("GET", "/view" + query, None, None, 120) as upstream:
                if upstream.status != 200:
                    return None
                reply = web.StreamResponse(status=200)
                for name in PASS_HEADERS:
                    if name in upstream.headers:
                        reply.headers[name] = upstream.headers[name]
                reply.headers.setdefault("Content-Type", "application/octet-stream")
                if upstream.content_length is not None and "Content-Encoding" not in upstream.headers:
                    reply.content_length = upstream.content_length
                prepared = False
                try:
                    async for chunk in upstream.content.iter_chunked(1 << 18):
                        if not prepared:
                            await reply.prepare(request)
                            prepared = True
                        await reply.write(chunk)
                except UPSTREAM_ERRORS as exc:
                    if not prepared:
                        raise
                    log.error("native view: upstream ComfyUI stopped mid-body: %r", exc)
                    return reset_connection(request)
                if not prepared:
                    await reply.prepare(request)
                await reply.write_eof()
                return reply
        except UPSTREAM_ERRORS as exc:
            raise ComfyUIError(f"ComfyUI at {self.executor.base_url} unreachable: {exc!r}") from exc

    async def queue_remaining(self, key: str) -> int:
        """ComfyUI's `queue_remaining` for one key: its prompts queued or running upstream now."""
        try:
            status, reply = await self.upstream_json("GET", "/queue")
        except ComfyUIError:
            return len(self.prompts.open_ids(key))
        if status != 200 or not isinstance(reply, dict):
            return len(self.prompts.open_ids(key))
        return sum(1 for part in ("queue_running", "queue_pending") for item in reply.get(part) or []
                   if isinstance(item, list) and len(item) > 1 and self.prompts.owns(key, item[1]))

    def own_remaining(self, key: str, everyone) -> int:
        """A status message's `queue_remaining` for one key, from the relay's own records (the
        key's prompts sent and not seen ending), never more than ComfyUI's count for everyone.
        Not from ComfyUI's /queue: reading it for every status message (two or three a
        prompt, to every socket of the key) costs the upstream a queue copy while the
        prompt runs there."""
        own = self.prompts.unended_count(key)
        return min(own, everyone) if isinstance(everyone, int) and not isinstance(everyone, bool) else own

    # ------------------------------------------------------------------ rewriting
    def local_item(self, item):
        """A queue/history prompt tuple with the client's own clientId back in extra_data."""
        if not isinstance(item, list) or len(item) < 4:
            return item
        task = self.prompts.owner(item[1])
        extra = dict(item[3]) if isinstance(item[3], dict) else {}
        if task is not None and "client_id" in extra:
            extra["client_id"] = self.prompts.client_of(task)
        return [*item[:3], extra, *item[4:]]

    def local_entry(self, prompt_id: str, entry):
        self.prompts.observe(prompt_id, entry)
        if isinstance(entry, dict) and "prompt" in entry:
            entry = {**entry, "prompt": self.local_item(entry["prompt"])}
        return entry

    async def ws_message(self, key: str, client_id: str, msg: dict) -> dict | None:
        """An upstream socket message as the key's client may see it, or None (not its own)."""
        data = msg.get("data")
        if not isinstance(data, dict):
            return msg
        if msg.get("type") == "status":
            data = dict(data)
            if "sid" in data:
                data["sid"] = client_id
            # ComfyUI's own count, for the whole queue: none there or none of the key's open, none of its own
            everyone = ((data.get("status") or {}).get("exec_info") or {}).get("queue_remaining")
            data["status"] = {"exec_info": {"queue_remaining": self.own_remaining(key, everyone)}}
            return {**msg, "data": data}
        prompt_id = data.get("prompt_id")
        if prompt_id is not None and not self.prompts.owns(key, prompt_id):
            return None
        kind = msg.get("type")
        if kind == "executed" and isinstance(data.get("output"), dict):
            self.prompts.add_files(key, file_refs({"_": data["output"]}))
        elif prompt_id is not None and (kind in END_MESSAGES or (kind == "executing" and data.get("node") is None)):
            self.prompt_ended(prompt_id)
        return msg

    # ------------------------------------------------------------------ ends
    def prompt_ended(self, prompt_id: str) -> None:
        """An end message of an own prompt went by: its task ends from its history shortly
        (unless the client's own /history read ended it first)."""
        task = self.prompts.owner(prompt_id)
        if task is None or task.status != RUNNING or task.ctx.state.get("settling"):
            return
        task.ctx.state["end_seen"] = True
        task.ctx.state["settling"] = True
        job = asyncio.get_running_loop().create_task(self._settle(task, prompt_id))
        self._settling.add(job)
        job.add_done_callback(self._settling.discard)

    async def _settle(self, task, prompt_id: str) -> None:
        await asyncio.sleep(SETTLE_SECONDS)
        try:
            if task.status != RUNNING:
                return
            try:
                status, reply = await self.upstream_json("GET", f"/history/{urllib.parse.quote(prompt_id, safe='')}")
            except ComfyUIError as exc:
                log.warning("native prompt %s: %s", prompt_id, exc)
                status, reply = None, None
            entry = reply.get(prompt_id) if status == 200 and isinstance(reply, dict) else None
            if isinstance(entry, dict):
                self.prompts.observe(prompt_id, entry)
            if task.status == RUNNING:
                self.prompts.poke()  # not in the history yet (or unreachable): the watcher decides
        finally:
            task.ctx.state["settling"] = False


def _match(method: str, rest: str) -> tuple[str | None, bool]:
    """(endpoint, whether the method fits) for a path below the key."""
    wild = rest.split("/", 1)[0] + "/*" if "/" in rest else None
    for route in (rest, wild):
        if route is None:
            continue
        if (method, route) in ROUTES:
            return ROUTES[(method, route)], True
        if any(r == route for _m, r in ROUTES):
            return next(e for (_m, r), e in ROUTES.items() if r == route), False
    return None, False


def _reply(status: int, payload) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _error(status: int, kind: str, message: str, **extra) -> tuple[int, dict, bytes]:
    return _reply(status, error_body(kind, message, **extra))


async def handle_native(request: web.Request, app: SimApp, proxy: NativeProxy | None) -> web.StreamResponse:
    if proxy is None:
        await read_body(request)
        app.count("native/unavailable", None)
        return json_reply(404, error_body("native_endpoint_unavailable",
                                          "the native ComfyUI endpoint needs the simulator started with --comfyui URL"))
    prefix = next(p for p in PREFIXES if (request.path + "/").startswith(p))
    key, _, rest = request.path[len(prefix):].partition("/")
    rest = rest.removeprefix("api/").rstrip("/")
    endpoint, method_ok = _match(request.method, rest)
    account = app.accounts.get(key) if key else None
    if account is not None and (account.disabled or account.free_user):
        account = None
    app.count(endpoint or "native/unmatched", key if account else None)
    if account is None:
        await read_body(request)
        log.info("native %s refused: unknown key %s (401)", endpoint or "request", redact(key))
        return json_reply(401, error_body("invalid_api_key", "the API key in the URL is not valid for this site"))
    if endpoint is None or not method_ok:
        await read_body(request)
        if endpoint is None:
            return json_reply(404, error_body("not_found", f"no route {request.method} /{rest} on the native endpoint"))
        return json_reply(405, error_body("method_not_allowed", f"{request.method} is not allowed on /{rest}"))
    if endpoint == "native/ws":
        return await relay_socket(request, proxy, account)
    limit = int(app.settings.max_upload_mb * 1024 * 1024) + (1 << 20) if endpoint == "native/upload" else None
    fault = app.faults.take(endpoint)
    if fault is None and rest == "upload/image" and request.content_length is not None \
            and request.content_length <= limit and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        raw = None  # streamed upstream as it arrives (its length is known and within the cap)
        request[STREAMED] = True
    else:
        raw = await read_body(request, limit)
    if fault is not None and not fault.commits:
        return await send(request, 200, b"", "application/json", fault=fault, envelope=app.finish)
    try:
        if fault is None and rest == "view" and _may_view(proxy, account, request.query):
            query = ("?" + request.query_string) if request.query_string else ""
            streamed = await proxy.stream_view(request, query)
            if streamed is not None:
                log.info("native %s /%s key=%s -> %d", request.method, rest, redact(account.key), streamed.status)
                return streamed
        status, headers, body = await _perform(request, proxy, account, rest, raw)
    except ComfyUIError as exc:
        log.error("native %s for key %s: %s", rest, redact(account.key), exc)
        status, headers, body = _error(502, "backend_unreachable", "the ComfyUI behind the endpoint does not answer")
    log.info("native %s /%s key=%s -> %d", request.method, rest, redact(account.key), status)
    wanted = {h.lower(): h for h in PASS_HEADERS}
    headers = {wanted[k.lower()]: v for k, v in headers.items() if k.lower() in wanted}
    content_type = headers.pop("Content-Type", "application/octet-stream")
    return await send(request, status, body, content_type, headers, fault=fault, envelope=app.finish)


async def _perform(request: web.Request, proxy: NativeProxy, account, rest: str, raw: bytes | None):
    head = rest.split("/", 1)[0]
    query = ("?" + request.query_string) if request.query_string else ""
    if request.method == "GET" and head in PASSTHROUGH:
        return await proxy.upstream("GET", "/" + rest + query)
    if rest == "prompt":
        if request.method == "GET":
            return _reply(200, {"exec_info": {"queue_remaining": await proxy.queue_remaining(account.key)}})
        return await _post_prompt(proxy, account, raw)
    if head == "history":
        return await (_history(proxy, account, rest, request.query) if request.method == "GET"
                      else _history_change(proxy, account, _json_body(raw)))
    if rest == "view":
        return await _view(proxy, account, request.query, query)
    if rest == "upload/image":
        return await _upload(proxy, account, raw, request)
    if rest == "upload/mask":
        return await _upload_mask(proxy, account, raw, request)
    if rest == "free":
        return 200, {"Content-Type": "text/plain"}, b""
    if rest == "interrupt":
        return await _interrupt(proxy, account, _json_body(raw))
    if rest == "queue":
        return await (_queue(proxy, account) if request.method == "GET"
                      else _queue_change(proxy, account, _json_body(raw)))
    return _error(404, "not_found", f"no route /{rest} on the native endpoint")


def _json_body(raw: bytes | None):
    try:
        return json.loads(raw.decode("utf-8")) if raw and raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return None


# ---------------------------------------------------------------------- prompts
async def _post_prompt(proxy: NativeProxy, account, raw: bytes | None):
    body = _json_body(raw)
    if not isinstance(body, dict):
        return _error(400, "invalid_json", "the body must be a JSON object", node_errors={})
    if "prompt" not in body:
        return _error(400, "no_prompt", "No prompt provided", node_errors={})
    prompt_id = str(body.get("prompt_id") or uuid.uuid4())
    client_id = body.get("client_id") if isinstance(body.get("client_id"), str) else ""
    try:
        task = proxy.prompts.reserve(account, prompt_id, client_id, body["prompt"])
    except Refused as exc:
        return _reply(exc.status, exc.body)
    # The shared queue's order is not the client's to choose: `number` and `front` are dropped.
    upstream = {k: v for k, v in body.items() if k not in ("number", "front")}
    upstream.update(prompt_id=prompt_id, client_id=proxy.prompts.upstream_client_id(account.key, client_id))
    try:
        status, headers, data = await proxy.upstream("POST", "/prompt", json.dumps(upstream).encode(),
                                                     {"Content-Type": "application/json"})
    except ComfyUIError:
        proxy.prompts.refused(task)
        raise
    reply = _json_body(data)
    if status == 200 and isinstance(reply, dict) and reply.get("prompt_id") == prompt_id:
        proxy.prompts.accepted(task, reply)
    else:
        proxy.prompts.refused(task)
    return status, headers, data


async def _history(proxy: NativeProxy, account, rest: str, query):
    if rest != "history":
        prompt_id = urllib.parse.unquote(rest.split("/", 1)[1])
        if not proxy.prompts.owns(account.key, prompt_id):
            return _reply(200, {})
        status, reply = await proxy.upstream_json("GET", f"/history/{urllib.parse.quote(prompt_id, safe='')}")
        entries = reply if status == 200 and isinstance(reply, dict) else {}
        return _reply(200, {pid: proxy.local_entry(pid, e) for pid, e in entries.items() if pid == prompt_id})
    status, reply = await proxy.upstream_json("GET", "/history")
    entries = reply if status == 200 and isinstance(reply, dict) else {}
    own = [(pid, e) for pid, e in entries.items() if proxy.prompts.owns(account.key, pid)]
    try:
        offset = int(query.get("offset", "-1"))
        max_items = int(query["max_items"]) if "max_items" in query else None
    except ValueError:
        return _error(400, "invalid_parameter", "max_items and offset must be integers")
    if offset < 0 and max_items is not None:
        offset = max(0, len(own) - max_items)
    own = own[max(offset, 0):]
    own = own[:max_items] if max_items is not None else own
    return _reply(200, {pid: proxy.local_entry(pid, e) for pid, e in own})


async def _history_change(proxy: NativeProxy, account, body):
    """ComfyUI's `POST /history` (`{"clear": true}` or `{"delete": [ids]}`), kept to the key's
    own prompts that ended (an entry the relay has not seen end is what bills it)."""
    if not isinstance(body, dict):
        return _error(400, "invalid_json", "the body must be a JSON object")
    wanted = body.get("delete") if isinstance(body.get("delete"), list) else []
    if body.get("clear"):
        status, reply = await proxy.upstream_json("GET", "/history")
        wanted = list(reply) if status == 200 and isinstance(reply, dict) else []
    ids = [pid for pid in wanted if proxy.prompts.owns(account.key, pid) and proxy.prompts.owner(pid).status
           not in (*WAITING, RUNNING)]
    if ids:
        await proxy.upstream_json("POST", "/history", {"delete": ids})
        log.info("native history delete of %d prompt(s) for key %s", len(ids), redact(account.key))
    return 200, {"Content-Type": "text/plain"}, b""


async def _queue(proxy: NativeProxy, account):
    status, reply = await proxy.upstream_json("GET", "/queue")
    if status != 200 or not isinstance(reply, dict):
        return _error(502, "backend_error", f"the ComfyUI behind the endpoint answered HTTP {status}")
    return _reply(200, {part: [proxy.local_item(item) for item in reply.get(part) or []
                               if isinstance(item, list) and proxy.prompts.owns(account.key, item[1])]
                        for part in ("queue_running", "queue_pending")})


async def _queue_change(proxy: NativeProxy, account, body):
    if not isinstance(body, dict):
        return _error(400, "invalid_json", "the body must be a JSON object")
    wanted = body.get("delete") if isinstance(body.get("delete"), list) else []
    ids = [pid for pid in wanted if proxy.prompts.owns(account.key, pid)]
    if body.get("clear"):
        status, reply = await proxy.upstream_json("GET", "/queue")
        pending = (reply or {}).get("queue_pending") or [] if status == 200 and isinstance(reply, dict) else []
        ids += [item[1] for item in pending if isinstance(item, list) and proxy.prompts.owns(account.key, item[1])]
    if ids:
        await proxy.upstream_json("POST", "/queue", {"delete": ids})
        log.info("native queue delete of %d prompt(s) for key %s", len(ids), redact(account.key))
        proxy.prompts.poke()
    return 200, {"Content-Type": "text/plain"}, b""


async def _interrupt(proxy: NativeProxy, account, body):
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id:
        targets = [prompt_id] if proxy.prompts.owns(account.key, prompt_id) else []
    else:  # ComfyUI's global interrupt: here, whatever of the key's own is running
        status, reply = await proxy.upstream_json("GET", "/queue")
        running = (reply or {}).get("queue_running") or [] if status == 200 and isinstance(reply, dict) else []
        targets = [item[1] for item in running if isinstance(item, list) and proxy.prompts.owns(account.key, item[1])]
    for target in targets:
        await proxy.upstream_json("POST", "/interrupt", {"prompt_id": target})
        log.info("native interrupt of prompt %s for key %s", target, redact(account.key))
    if targets:
        proxy.prompts.poke()
    return 200, {"Content-Type": "text/plain"}, b""


# ---------------------------------------------------------------------- files
def _may_view(proxy: NativeProxy, account, params) -> bool:
    filename = params.get("filename", "")
    kind = params.get("type", "output") or "output"
    annotated = ANNOTATION.match(filename)
    if annotated:
        filename, kind = annotated.group(1), annotated.group(2)
    return proxy.prompts.may_view(account.key, (kind, params.get("subfolder", ""), filename))


async def _view(proxy: NativeProxy, account, params, query: str):
    if not _may_view(proxy, account, params):
        return _error(404, "not_found", "no such file among this account's outputs and uploads")
    return await proxy.upstream("GET", "/view" + query, timeout=120)


async def _upload_mask(proxy: NativeProxy, account, raw: bytes | None, request: web.Request):
    """ComfyUI's `/upload/mask`: the mask goes onto `original_ref`, which must be one of the
    key's own files (else another key's image could be read back through it)."""
    if raw is None:
        return _error(413, "file_too_large", f"the upload is over {proxy.app.settings.max_upload_mb:g} MB")
    try:
        ref = json.loads(form_text(parse_multipart(raw, request.headers.get("Content-Type", "")), "original_ref"))
    except (ValueError, TypeError):
        ref = None
    if not isinstance(ref, dict) or not _may_view(proxy, account, {k: str(v) for k, v in ref.items()}):
        return _error(400, "invalid_original_ref", "original_ref must name one of this account's files")
    return await _upload(proxy, account, raw, request, "/upload/mask")


async def _upload(proxy: NativeProxy, account, raw: bytes | None, request: web.Request, path: str = "/upload/image"):
    """`raw` is the whole body, or None: too large (chunked or buffered), or streamed (its
    Content-Length known and within the cap: relayed from the client's stream as it comes)."""
    headers = {"Content-Type": request.headers.get("Content-Type", "")}
    if raw is None and request.get(STREAMED):
        body = request.content
        headers["Content-Length"] = str(request.content_length)
    elif raw is None:
        return _error(413, "file_too_large", f"the upload is over {proxy.app.settings.max_upload_mb:g} MB")
    else:
        body = raw
    status, headers, data = await proxy.upstream("POST", path, body, headers, timeout=120)
    reply = _json_body(data)
    if status == 200 and isinstance(reply, dict) and isinstance(reply.get("name"), str):
        proxy.prompts.add_files(account.key, {(reply.get("type") or "input", reply.get("subfolder") or "",
                                               reply["name"])})
        log.info("native upload for key %s: %s", redact(account.key), reply["name"])
    return status, headers, data
