"""`/proxy/{key}/…` in front of a real ComfyUI, the way RunningHub's native endpoint answers,
for the native client's tests (rhsim gets its own relay on the `simproxy` branch).

    with NativeRelay(comfy.base_url, keys) as relay:
        NativeClient(resolve_site(base_url=relay.base_url), ApiKey(keys[0]))
        relay.count("POST", "/prompt")           # requests that reached the relay
        relay.fault("POST", "/prompt", "drop")   # forward, then drop the connection unanswered

Every route is relayed with the key stripped (the websocket `/ws?clientId=…` too, both
ways). An unknown key gets 401 `{"error": {"type": "invalid_api_key", ...}}`. Faults, each
for the next matching request: `drop` (forwarded, then the connection is closed without a
reply), `500_after` (forwarded, then HTTP 500), `500` (not forwarded, HTTP 500), `429`,
`402` (not forwarded, the contract's error shapes), `pass` (relayed as usual: queued before
other faults, it lets the first matching request through). `ws_drop_after = N` closes every
client socket after N messages (a socket that keeps dropping); `ws_hide` and `ws_rewrite`
drop or change the text messages a test picks.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import threading

import aiohttp
from aiohttp import web

ERRORS = {
    401: {"type": "invalid_api_key", "message": "The API key is not valid."},
    402: {"type": "insufficient_balance", "message": "The account balance is too low."},
    429: {"type": "too_many_prompts", "message": "Too many prompts at once for this account."},
    500: {"type": "internal_error", "message": "Internal error."},
}


class NativeRelay:
    def __init__(self, upstream: str, keys: list[str]):
        self.upstream = upstream.rstrip("/")
        self.keys = set(keys)
        self.counts: collections.Counter = collections.Counter()
        self.faults: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.ws_drop_after: int | None = None  # close every client socket after this many messages
        self.ws_hide = None  # a test's predicate: text messages (decoded) it returns true for are not relayed
        self.ws_rewrite = None  # a test's function: each text message (decoded) is relayed as it returns it

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control ----------------------------------------------------------------------------

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.counts[(method, path)]

    def fault(self, method: str, path: str, kind: str, times: int = 1) -> None:
        with self._lock:
            self.faults[(method, path)].extend([kind] * times)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.faults.clear()
            self.ws_drop_after = None
            self.ws_hide = None
            self.ws_rewrite = None

    def _take_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            queue = self.faults.get((method, path))
            return queue.pop(0) if queue else None

    # -- life -------------------------------------------------------------------------------

    def __enter__(self) -> "NativeRelay":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="native-relay")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the native relay did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/proxy/{key}/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    # -- relaying ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["key"] not in self.keys:
            return web.json_response({"error": ERRORS[401]}, status=401)
        path = "/" + request.match_info["tail"]
        with self._lock:
            self.counts[(request.method, path)] += 1
        if path == "/ws":
            return await self._relay_ws(request)
        fault = self._take_fault(request.method, path)
        if fault in ("429", "402", "500"):
            body = {"error": ERRORS[int(fault)]}
            if fault == "429":
                body["node_errors"] = {}
            return web.json_response(body, status=int(fault))
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",)}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, self.upstream + path, params=request.query, data=body,
                                       headers=headers) as reply:
                data = await reply.read()
                status = reply.status
                ctype = reply.headers.get("Content-Type", "application/octet-stream")
        if fault == "drop":
            request.transport.close()
            raise ConnectionResetError("dropped by the test relay")
        if fault == "500_after":
            return web.json_response({"error": ERRORS[500]}, status=500)
        response = web.Response(body=data, status=status)
        response.headers["Content-Type"] = ctype
        return response

    async def _relay_ws(self, request: web.Request) -> web.WebSocketResponse:
        ours = web.WebSocketResponse()
        await ours.prepare(request)
        url = self.upstream.replace("http", "ws", 1) + "/ws"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, params=request.query) as theirs:
                async def down():
                    sent = 0
                    async for msg in theirs:
                        if self.ws_drop_after is not None and sent >= self.ws_drop_after:
                            break
                        sent += 1
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            if self.ws_hide is not None and self.ws_hide(json.loads(msg.data)):
                                continue
                            if self.ws_rewrite is not None:
                                await ours.send_str(json.dumps(self.ws_rewrite(json.loads(msg.data))))
                                continue
                            await ours.send_str(msg.data)
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await ours.send_bytes(msg.data)
                    await ours.close()

                async def up():
                    async for msg in ours:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await theirs.send_str(msg.data)
                    await theirs.close()

                tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
        return ours
