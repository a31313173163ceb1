"""HTTP framing: routing, body parsing, counting, fault injection, file serving, test hooks."""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import struct
import time
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import protocol as P
from .app import SimApp, v2_error
from .faults import ENDPOINTS, FAULT_KINDS, Fault
from .protocol import ApiError, redact

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
V1_PREFIXES = ("/task/openapi/", "/uc/openapi/", "/api/openapi/")
V2_RUN_RE = re.compile(r"^/openapi/v2/run/(workflow|ai-app)/([^/]+)$")
FILES_RE = re.compile(r"^/files/([0-9a-f]{32})/(.+)$")

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
HTML_200 = (
    "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>RunningHub</title></head>"
    "<body><div id=\"app\">\u8bf7\u5b8c\u6210\u5b89\u5168\u9a8c\u8bc1</div>"
    "<script src=\"/static/js/app.js\"></script></body></html>"
)
EXPIRED_XML = (
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>NoSuchKey</Code>\n"
    "  <Message>The specified key does not exist.</Message>\n</Error>\n"
)


class HookError(Exception):
    pass


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """Minimal multipart/form-data parser: {field: (filename or None, bytes)}."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match:
        raise ApiError(P.PARAMS_INVALID, "multipart/form-data with a boundary is required")
    boundary = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = head.decode("utf-8", "replace")
        disposition = next((line for line in headers.split("\r\n")
                            if line.lower().startswith("content-disposition")), "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            fields[name.group(1)] = (filename.group(1) if filename else None, content)
    return fields


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rhsim"
    sys_version = ""
    app: SimApp  # set on the subclass made by make_server

    # ------------------------------------------------------------------ plumbing
    def log_message(self, fmt, *args):  # route http.server's own lines to logging
        log.debug("%s - %s", self.address_string(), fmt % args)

    def _read_body(self, limit: int | None = None) -> bytes | None:
        """The request body; None if it is longer than `limit` (it is drained)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                self.rfile.read(2)
                total += size
                if limit is None or total <= limit:
                    chunks.append(data)
            return b"".join(chunks) if limit is None or total <= limit else None
        length = int(self.headers.get("Content-Length") or 0)
        if limit is not None and length > limit:
            remaining = length
            while remaining > 0:
                got = self.rfile.read(min(remaining, 1 << 20))
                if not got:
                    break
                remaining -= len(got)
            return None
        return self.rfile.read(length) if length else b""

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return None

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.app.base_url

    def _raw_send(self, status: int, body: bytes, content_type: str, headers: dict | None = None,
                  fault: Fault | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        if fault is not None and fault.kind in ("reset_mid_body",):
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault is not None and fault.kind == "reset_mid_body":
            cut = fault.params.get("bytes")
            cut = int(cut) if cut is not None else int(len(body) * float(fault.params.get("fraction", 0.5)))
            cut = max(0, min(cut, len(body) - 1)) if body else 0
            self.wfile.write(body[:cut])
            self.wfile.flush()
            time.sleep(0.05)
            self._reset()
            return
        if fault is not None and fault.kind == "slow_body":
            chunk = max(1, int(fault.params.get("chunk", 16)))
            delay = float(fault.params.get("delay", 0.05))
            for start in range(0, len(body), chunk):
                self.wfile.write(body[start:start + chunk])
                self.wfile.flush()
                if start + chunk < len(body):
                    time.sleep(delay)
            return
        self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST."""
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _send_json(self, status: int, payload, headers: dict | None = None, fault: Fault | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send_bytes(status, body, "application/json", headers, fault)

    def _send_bytes(self, status: int, body: bytes, content_type: str, headers: dict | None = None,
                    fault: Fault | None = None) -> None:
        """Sends a reply, shaped by `fault` if one fired for this request."""
        if fault is None or fault.kind in ("reset_mid_body", "slow_body"):
            self._raw_send(status, body, content_type, headers, fault)
            return
        kind, params = fault.kind, fault.params
        log.info("fault %s fired on %s", kind, self.path.split("?")[0])
        if kind in ("reset_before", "reset_after_commit"):
            self._reset()
        elif kind == "delay":
            time.sleep(float(params.get("seconds", 1.0)))
            self._raw_send(status, body, content_type, headers)
        elif kind == "http_error":
            code = int(params.get("status", 503))
            extra = {}
            if params.get("retry_after") is not None:
                extra["Retry-After"] = params["retry_after"]
            if code >= 502:
                page = NGINX_502.replace("502 Bad Gateway", f"{code} {_reason(code)}")
                self._raw_send(code, page.encode(), "text/html", extra)
            else:
                spring = {"timestamp": _now_iso(), "status": code, "error": _reason(code),
                          "path": self.path.split("?")[0]}
                self._raw_send(code, json.dumps(spring).encode(), "application/json", extra)
        elif kind == "malformed_json":
            cut = body[: max(1, len(body) // 2)] if len(body) > 8 else b'{"code": 0, "msg": "succ'
            self._raw_send(200, cut, "application/json")
        elif kind == "html_502":
            self._raw_send(502, NGINX_502.encode(), "text/html")
        elif kind == "html_200":
            self._raw_send(200, HTML_200.encode("utf-8"), "text/html;charset=utf-8")
        elif kind == "expired":
            self._raw_send(404, EXPIRED_XML.encode(), "application/xml")
        elif kind == "compressed":
            encoding = str(params.get("encoding", "gzip"))
            packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
            self._raw_send(status, packed, content_type, {**(headers or {}), "Content-Encoding": encoding})
        elif kind == "api_error":
            code = int(params["code"])
            reply = self.app._finish({"code": code, "msg": params.get("msg") or P.MESSAGES.get(code, "UNKNOWN_ERROR"),
                                      "data": params.get("data")})
            self._raw_send(200, json.dumps(reply, ensure_ascii=False).encode("utf-8"), "application/json")
        else:  # pragma: no cover - FaultBoard validates kinds
            self._raw_send(status, body, content_type, headers)

    # ------------------------------------------------------------------ dispatch
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def _dispatch(self):
        path = unquote(urlsplit(self.path).path)
        try:
            if path.startswith("/__sim__/"):
                self._hook(path)
            elif path.startswith("/files/"):
                self._file(path)
            elif path in V1_ROUTES:
                self._v1(path)
            elif path == "/task/openapi/upload":
                self._v1_upload()
            elif V2_RUN_RE.match(path) or path in ("/openapi/v2/query", "/openapi/v2/media/upload/binary"):
                self._v2(path)
            elif path.startswith(V1_PREFIXES):
                self._read_body()
                self.app.count("unmatched", None)
                reply = self.app.error_reply(ApiError(P.TOKEN_INVALID))
                self._send_json(200, reply)
            else:
                self._read_body()
                self.app.count("unmatched", None)
                self._send_json(404, {"timestamp": _now_iso(), "status": 404, "error": "Not Found", "path": path})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug must still answer, as a 500 does
            log.exception("internal error on %s %s", self.command, path)
            try:
                self._send_json(500, {"timestamp": _now_iso(), "status": 500, "error": "Internal Server Error",
                                      "path": path})
            except OSError:
                pass

    def _method_not_allowed(self, path: str) -> bool:
        if self.command != "POST":
            self._read_body()
            self._send_json(405, {"timestamp": _now_iso(), "status": 405, "error": "Method Not Allowed",
                                  "path": path}, {"Allow": "POST"})
            return True
        return False

    @staticmethod
    def _json_body(raw: bytes) -> dict:
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(P.PARAMS_INVALID, f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(P.PARAMS_INVALID, "request body must be a JSON object")
        return body

    # ------------------------------------------------------------------ v1
    def _v1(self, path: str) -> None:
        if self._method_not_allowed(path):
            return
        endpoint, method = V1_ROUTES[path]
        raw = self._read_body()
        try:
            body = self._json_body(raw)
        except ApiError as err:
            body, parse_error = {}, err
        else:
            parse_error = None
        key_param = "apikey" if endpoint == "accountStatus" else "apiKey"
        key = body.get(key_param) if isinstance(body.get(key_param), str) and body.get(key_param) else None
        key = key or self._bearer()
        self.app.count(endpoint, key)
        fault = self.app.faults.take(endpoint)
        if fault is not None and not fault.commits:
            self._send_bytes(200, b"", "application/json", fault=fault)
            return
        try:
            if parse_error:
                raise parse_error
            reply = getattr(self.app, method)(body, key, self._base_url())
        except ApiError as err:
            reply = self.app.error_reply(err)
        log.info("%s key=%s -> %s", endpoint, redact(key), reply.get("code"))
        self._send_json(200, reply, fault=fault)

    def _upload_limit(self) -> int:
        return int(self.app.settings.max_upload_mb * 1024 * 1024) + (1 << 20)

    def _v1_upload(self) -> None:
        path = "/task/openapi/upload"
        if self._method_not_allowed(path):
            return
        raw = self._read_body(self._upload_limit())
        fields = {}
        error = None
        if raw is None:
            error = ApiError(P.APIKEY_FILE_SIZE_EXCEEDED, f"APIKEY_FILE_SIZE_EXCEEDED: the limit is "
                                                          f"{self.app.settings.max_upload_mb:g} MB")
        else:
            try:
                fields = parse_multipart(raw, self.headers.get("Content-Type", ""))
            except ApiError as err:
                error = err
        key = fields.get("apiKey", (None, b""))[1].decode("utf-8", "replace").strip() or self._bearer()
        self.app.count("upload", key)
        fault = self.app.faults.take("upload")
        if fault is not None and not fault.commits:
            self._send_bytes(200, b"", "application/json", fault=fault)
            return
        try:
            if error:
                raise error
            account = self.app.authenticate(key)
            if "file" not in fields or fields["file"][0] is None:
                raise ApiError(P.PARAMS_INVALID, "file is required")
            file_type = fields.get("fileType", (None, b""))[1].decode("utf-8", "replace").strip()
            if not file_type:
                raise ApiError(P.PARAMS_INVALID, "fileType is required")
            if file_type not in ("image", "video", "audio", "input"):
                raise ApiError(P.PARAMS_INVALID, f"fileType must be image, video, audio or input, not {file_type!r}")
            filename, data = fields["file"]
            name, _kind = self.app.upload(account, data, filename or "", file_type)
            reply = self.app.ok({"fileName": name, "fileType": file_type})
        except ApiError as err:
            reply = self.app.error_reply(err)
        log.info("upload key=%s -> %s", redact(key), reply.get("code"))
        self._send_json(200, reply, fault=fault)

    # ------------------------------------------------------------------ v2
    def _v2(self, path: str) -> None:
        if self._method_not_allowed(path):
            return
        run = V2_RUN_RE.match(path)
        endpoint = f"v2/run/{run.group(1)}" if run else ("v2/query" if path.endswith("/query") else "v2/upload")
        key = self._bearer()
        is_upload = endpoint == "v2/upload"
        raw = self._read_body(self._upload_limit() if is_upload else None)
        self.app.count(endpoint, key)
        fault = self.app.faults.take(endpoint)
        if fault is not None and not fault.commits:
            self._send_bytes(200, b"", "application/json", fault=fault)
            return
        task_id = ""
        try:
            try:
                account = self.app.authenticate(key, "Authorization")
            except ApiError as err:
                raise ApiError(P.APIKEY_UNAUTHORIZED, "invalid api key") from err
            if is_upload:
                reply = self._v2_upload_reply(account, raw)
            else:
                body = self._json_body(raw)
                if run:
                    kind = "ai-app" if run.group(1) == "ai-app" else "workflow"
                    task = self.app.create_task(account, kind=kind, target_id=run.group(2), body=body, api="v2")
                    view = self.app.v2_task_view(task, self._base_url())
                    reply = {k: view[k] for k in ("taskId", "status", "errorCode", "errorMessage", "results",
                                                  "clientId", "promptTips")}
                else:
                    task_id = self.app.task_id_param(body)
                    task = self.app.own_task(account, task_id)
                    reply = self.app.v2_task_view(task, self._base_url())
        except ApiError as err:
            if is_upload:
                reply = {"code": int(P.V2_CODES.get(err.code, "1000")), "message": err.msg, "data": None}
            else:
                reply = v2_error(err, task_id)
        self._send_json(200, reply, fault=fault)

    def _v2_upload_reply(self, account, raw: bytes | None) -> dict:
        if raw is None:
            raise ApiError(P.APIKEY_FILE_SIZE_EXCEEDED, "file too large")
        fields = parse_multipart(raw, self.headers.get("Content-Type", ""))
        if "file" not in fields or fields["file"][0] is None:
            raise ApiError(P.PARAMS_INVALID, "file is required")
        filename, data = fields["file"]
        name, kind = self.app.upload(account, data, filename, None)
        entry = self.app.storage.publish(self.app.storage.resolve_input(name), None, name.split("/")[-1])
        return {"code": 0, "message": "success", "data": {
            "type": kind, "download_url": self._base_url() + self.app.storage.url_path(entry),
            "fileName": name, "size": str(len(data)),
        }}

    # ------------------------------------------------------------------ files
    def _file(self, path: str) -> None:
        self._read_body()
        self.app.count("files", None)
        match = FILES_RE.match(path)
        fault = self.app.faults.take("files")
        entry = self.app.storage.lookup(match.group(1)) if match else None
        if fault is not None and not fault.commits:
            self._send_bytes(404, b"", "application/xml", fault=fault)
            return
        ttl = self.app.settings.url_ttl_seconds
        if entry is None or entry.name != match.group(2) or (ttl > 0 and time.time() - entry.created > ttl) \
                or entry.expired or not entry.path.is_file():
            self._raw_send(404, EXPIRED_XML.encode(), "application/xml")
            return
        if self.command not in ("GET", "HEAD"):
            self._raw_send(405, b"", "text/plain", {"Allow": "GET, HEAD"})
            return
        data = entry.path.read_bytes()
        headers = {"Cache-Control": "max-age=86400", "ETag": f'"{entry.token}"', "Accept-Ranges": "bytes",
                   "Content-Disposition": f'inline; filename="{entry.name}"'}
        status = 200
        wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if wanted and (wanted.group(1) or wanted.group(2)):
            size = len(data)
            if wanted.group(1):
                start = int(wanted.group(1))
                end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
            else:
                start, end = max(0, size - int(wanted.group(2))), size - 1
            if start >= size or start > end:
                self._raw_send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                return
            status, data = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send_bytes(status, data, entry.content_type, headers, fault)

    # ------------------------------------------------------------------ hooks
    def _hook(self, path: str) -> None:
        raw = self._read_body()
        try:
            payload = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise HookError("body must be a JSON object")
            result = self._hook_result(path, payload)
        except (HookError, ValueError, TypeError) as exc:
            self._raw_send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
            return
        if result is None:
            self._raw_send(404, json.dumps({"error": f"no hook {self.command} {path}"}).encode(), "application/json")
            return
        self._raw_send(200, json.dumps(result, ensure_ascii=False, default=str).encode("utf-8"), "application/json")

    def _hook_result(self, path: str, payload: dict):
        app, cmd = self.app, self.command
        query = parse_qs(urlsplit(self.path).query)
        if path == "/__sim__/health" and cmd == "GET":
            return {"ok": True, "site": app.site, "executor": app.executor.name, "baseUrl": app.base_url}
        if path == "/__sim__/counts" and cmd == "GET":
            return app.counts()
        if path == "/__sim__/reset" and cmd == "POST":
            what = payload.get("what", ["counts"])
            if isinstance(what, str):
                what = [what]
            app.reset(what)
            return {"ok": True, "reset": what}
        if path == "/__sim__/tasks" and cmd == "GET":
            tasks = [t.summary() for t in app.tasks.all()]
            if "status" in query:
                tasks = [t for t in tasks if t["status"] in query["status"]]
            return tasks
        if path.startswith("/__sim__/tasks/") and cmd == "GET":
            task = app.tasks.get(path.rsplit("/", 1)[-1])
            if task is None:
                raise HookError("no such task")
            return {**task.summary(), "graph": task.graph, "promptTips": task.prompt_tips}
        if path == "/__sim__/config":
            if cmd == "GET":
                return app.config_view()
            if cmd == "POST":
                return app.configure(payload)
        if path == "/__sim__/faults":
            if cmd == "GET":
                return {"faults": app.faults.list(), "kinds": FAULT_KINDS, "endpoints": ENDPOINTS}
            if cmd == "POST":
                params = dict(payload.get("params") or {})
                fault = app.faults.add(payload.get("endpoint", ""), payload.get("kind", ""),
                                       int(payload.get("count", 1)), **params)
                log.info("fault armed: %s x%d on %s", fault.kind, fault.remaining, fault.endpoint)
                return fault.as_dict()
            if cmd == "DELETE":
                app.faults.clear()
                return {"ok": True}
        if path == "/__sim__/faults/clear" and cmd == "POST":
            app.faults.clear()
            return {"ok": True}
        if path == "/__sim__/expire" and cmd == "POST":
            task = app.tasks.get(str(payload.get("taskId", "")))
            if task is None:
                raise HookError("no such task")
            for entry in task.published:
                entry.expired = True
            return {"ok": True, "expired": len(task.published)}
        if path == "/__sim__/workflows" and cmd == "GET":
            return {"workflows": app.workflows.ids()}
        return None


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(app: SimApp, host: str, port: int) -> SimServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = SimServer((host, port), handler)
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    app.base_url = f"http://{shown}:{bound_port}"
    return server
