"""Sending replies, shaped by a transport fault when one fired (see faults.py).

Resets are real TCP resets (SO_LINGER 0, then abort), a broken body is a real short write
with the full Content-Length announced, a slow body is really dribbled: clients meet these
faults at the socket, as they would on a flaky network."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import struct
import time
import zlib
from http import HTTPStatus

from aiohttp import web

from . import protocol as P
from .faults import Fault

log = logging.getLogger("rhsim.http")

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


class ConnectionDropped(web.Response):
    """What a handler returns after it reset the connection: nothing more is sent."""


def plain(status: int, body: bytes, content_type: str, headers: dict | None = None) -> web.Response:
    """A reply with exactly this Content-Type (aiohttp would otherwise add a charset)."""
    reply = web.Response(status=status, body=body, headers={"Content-Type": content_type})
    for name, value in (headers or {}).items():
        reply.headers[name] = str(value)
    return reply


def json_reply(status: int, payload, headers: dict | None = None) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    return plain(status, body, "application/json", headers)


def spring_error(status: int, path: str, headers: dict | None = None) -> web.Response:
    """The JSON error page of RunningHub's Spring back end, with its path scrubbed of keys
    (the simulator never echoes a key)."""
    return json_reply(status, {"timestamp": now_iso(), "status": status, "error": reason(status),
                               "path": P.scrub_path(path)},
                      headers)


def reset_connection(request: web.Request) -> ConnectionDropped:
    """Drops the connection with a TCP RST, without a reply."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
    return ConnectionDropped()


async def send(request: web.Request, status: int, body: bytes, content_type: str,
               headers: dict | None = None, fault: Fault | None = None,
               envelope=lambda reply: reply) -> web.StreamResponse:
    """The reply, or what `fault` makes of it (`envelope` finishes an `api_error` envelope as
    the current drift mode wants)."""
    if fault is None:
        return plain(status, body, content_type, headers)
    log.info("fault %s fired on %s", fault.kind, P.scrub_path(request.path))
    kind, params = fault.kind, fault.params
    if kind in ("reset_before", "reset_after_commit"):
        return reset_connection(request)
    if kind == "reset_mid_body":
        return await _broken_body(request, status, body, content_type, headers, params)
    if kind == "slow_body":
        return await _slow_body(request, status, body, content_type, headers, params)
    if kind == "delay":
        await asyncio.sleep(float(params.get("seconds", 1.0)))
        return plain(status, body, content_type, headers)
    if kind == "compressed":
        encoding = str(params.get("encoding", "gzip"))
        packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
        return plain(status, packed, content_type, {**(headers or {}), "Content-Encoding": encoding})
    return _replacement(request, kind, params, body, envelope)


def _replacement(request: web.Request, kind: str, params: dict, body: bytes, envelope) -> web.Response:
    """The reply a fault sends instead of the real one."""
    if kind == "http_error":
        code = int(params.get("status", 503))
        extra = {"Retry-After": params["retry_after"]} if params.get("retry_after") is not None else {}
        if code >= 502:
            page = NGINX_502.replace("502 Bad Gateway", f"{code} {reason(code)}")
            return plain(code, page.encode(), "text/html", extra)
        return spring_error(code, request.path, extra)
    if kind == "malformed_json":
        cut = body[: max(1, len(body) // 2)] if len(body) > 8 else b'{"code": 0, "msg": "succ'
        return plain(200, cut, "application/json")
    if kind == "html_502":
        return plain(502, NGINX_502.encode(), "text/html")
    if kind == "html_200":
        return plain(200, HTML_200.encode("utf-8"), "text/html;charset=utf-8")
    if kind == "expired":
        return plain(404, EXPIRED_XML.encode(), "application/xml")
    if kind == "api_error":
        code = int(params["code"])
        return json_reply(200, envelope({"code": code, "msg": params.get("msg") or P.MESSAGES.get(code, "UNKNOWN_ERROR"),
                                         "data": params.get("data")}))
    raise ValueError(f"fault kind {kind!r} has no reply")  # FaultBoard validates kinds


async def _start(request, status, size, content_type, headers) -> web.StreamResponse:
    reply = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    for name, value in (headers or {}).items():
        reply.headers[name] = str(value)
    reply.content_length = size
    await reply.prepare(request)
    return reply


async def _broken_body(request, status, body, content_type, headers, params) -> web.StreamResponse:
    cut = params.get("bytes")
    cut = int(cut) if cut is not None else int(len(body) * float(params.get("fraction", 0.5)))
    cut = max(0, min(cut, len(body) - 1)) if body else 0
    reply = await _start(request, status, len(body), content_type, headers)
    if request.method == "HEAD":
        return reply
    await reply.write(body[:cut])
    await asyncio.sleep(0.05)
    reset_connection(request)
    return reply


async def _slow_body(request, status, body, content_type, headers, params) -> web.StreamResponse:
    chunk = max(1, int(params.get("chunk", 16)))
    delay = float(params.get("delay", 0.05))
    reply = await _start(request, status, len(body), content_type, headers)
    if request.method == "HEAD":
        return reply
    for start in range(0, len(body), chunk):
        await reply.write(body[start:start + chunk])
        if start + chunk < len(body):
            await asyncio.sleep(delay)
    await reply.write_eof()
    return reply


def reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
