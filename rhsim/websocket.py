"""`GET /ws?clientId=<task's clientId>`: the task's ComfyUI websocket, as at `netWssUrl`.

On connect: `status` (with `sid`) and, if a node is executing, `executing` for it (as
ComfyUI does on reconnect), or, if the task has ended, the messages that ended it; then
the task's messages as they happen. The `websocket`
setting shapes it: `off` refuses (404), `silent` accepts and never sends, `drop` cuts the
connection (no close frame) after `websocket_drop_after` messages."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from .app import SimApp
from .progress import message, status_message
from .protocol import redact
from .replies import reset_connection, spring_error

log = logging.getLogger("rhsim.ws")

_CLOSED = None  # queued when the client goes away
OPEN_SOCKETS = web.AppKey("open_sockets", set)  # every task socket of the API host


def track_sockets(api: web.Application) -> None:
    """Keeps the API host's open sockets, and closes them when it shuts down (a socket waits
    for messages indefinitely and would otherwise hold the shutdown up)."""
    api[OPEN_SOCKETS] = set()

    async def close_all(_api: web.Application) -> None:
        for socket in list(api[OPEN_SOCKETS]):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    api.on_shutdown.append(close_all)


async def handle_ws(request: web.Request, app: SimApp) -> web.StreamResponse:
    client_id = request.query.get("clientId", "")
    task = app.tasks.by_client_id(client_id) if client_id else None
    mode = app.settings.websocket
    app.count("ws", task.key if task else None)
    if task is None or mode == "off":
        return spring_error(404, request.path)
    socket = web.WebSocketResponse(autoping=True)
    await socket.prepare(request)
    log.info("websocket for task %s (key %s) opened, mode %s", task.task_id, redact(task.key), mode)
    inbox: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def sink(msg) -> None:
        loop.call_soon_threadsafe(inbox.put_nowait, msg)

    current, ending = task.feed.attach(sink)
    request.app[OPEN_SOCKETS].add(socket)
    reader = asyncio.create_task(_read_until_closed(socket, inbox))
    try:
        if mode == "silent":
            await reader
            return socket
        await _relay(request, socket, inbox, app, [
            status_message(app.tasks.open_count(task.key), sid=client_id),
            *([message("executing", {"node": current})] if current else []),
            *ending,
        ])
    finally:
        task.feed.detach(sink)
        request.app[OPEN_SOCKETS].discard(socket)
        reader.cancel()
        log.info("websocket for task %s closed", task.task_id)
    return socket


async def _relay(request, socket: web.WebSocketResponse, inbox: asyncio.Queue, app: SimApp, first: list) -> None:
    sent = 0
    pending = list(first)
    while True:
        msg = pending.pop(0) if pending else await inbox.get()
        if msg is _CLOSED or socket.closed:
            return
        await socket.send_str(json.dumps(msg, ensure_ascii=False))
        sent += 1
        if app.settings.websocket == "drop" and sent >= app.settings.websocket_drop_after:
            log.info("websocket dropped after %d messages (websocket=drop)", sent)
            reset_connection(request)
            return


async def _read_until_closed(socket: web.WebSocketResponse, inbox: asyncio.Queue) -> None:
    """Reads (and ignores) what the client sends, so pings are answered and a close is seen."""
    try:
        async for msg in socket:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        inbox.put_nowait(_CLOSED)
