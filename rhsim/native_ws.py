"""`/proxy/{apiKey}/ws?clientId=…`: one upstream ComfyUI socket per client socket.

The upstream socket connects with the clientId the proxy derives from (key, clientId), the
one it also puts in that client's `POST /prompt`, so ComfyUI itself sends that client's
prompts' messages there and nowhere else. Frames are relayed both ways (binary previews
included); upstream broadcasts are filtered and rewritten by `NativeProxy.ws_message`
(`status`: the client's own `sid` and its key's own queue; a message of another key's prompt
is dropped). Either side closing closes the other."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import aiohttp
from aiohttp import WSMsgType, web

from .native_prompts import error_body
from .protocol import redact
from .replies import json_reply
from .websocket import OPEN_SOCKETS

log = logging.getLogger("rhsim.native.ws")


async def relay_socket(request: web.Request, proxy, account) -> web.StreamResponse:
    socket = web.WebSocketResponse(autoping=True)
    if not socket.can_prepare(request).ok:
        return json_reply(400, error_body("not_a_websocket", "this route expects a websocket upgrade"))
    client_id = request.query.get("clientId") or uuid.uuid4().hex
    url = proxy.executor.ws_url(proxy.prompts.upstream_client_id(account.key, client_id))
    try:
        upstream = await proxy.session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        log.error("native socket for key %s: upstream ComfyUI socket failed: %s", redact(account.key), exc)
        return json_reply(502, error_body("backend_unreachable", "the ComfyUI behind the endpoint does not answer"))
    await socket.prepare(request)
    request.app[OPEN_SOCKETS].add(socket)
    log.info("native socket opened for key %s", redact(account.key))
    pumps = [asyncio.create_task(_to_comfy(socket, upstream)),
             asyncio.create_task(_to_client(upstream, socket, proxy, account.key, client_id))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await upstream.close()
        if not socket.closed:
            await socket.close()
        request.app[OPEN_SOCKETS].discard(socket)
        log.info("native socket closed for key %s", redact(account.key))
    return socket


async def _to_comfy(socket: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """What the client sends (feature flags, say) goes upstream; returns when the client leaves."""
    async for frame in socket:
        if frame.type == WSMsgType.TEXT:
            await upstream.send_str(frame.data)
        elif frame.type == WSMsgType.BINARY:
            await upstream.send_bytes(frame.data)
        elif frame.type == WSMsgType.ERROR:
            return


async def _to_client(upstream: aiohttp.ClientWebSocketResponse, socket: web.WebSocketResponse, proxy,
                     key: str, client_id: str) -> None:
    """ComfyUI's messages, filtered and rewritten for this client; returns when ComfyUI leaves."""
    async for frame in upstream:
        if socket.closed:
            return
        if frame.type == WSMsgType.BINARY:
            await socket.send_bytes(frame.data)
            continue
        if frame.type != WSMsgType.TEXT:
            return
        try:
            msg = json.loads(frame.data)
        except ValueError:
            continue
        msg = await proxy.ws_message(key, client_id, msg) if isinstance(msg, dict) else None
        if msg is not None:
            await socket.send_str(json.dumps(msg, ensure_ascii=False))
