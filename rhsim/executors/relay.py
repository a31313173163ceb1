"""Relays one prompt's websocket messages from a real ComfyUI to a simulated task's feed.

The relay connects (as the task's clientId) before the prompt is queued, so nothing is
missed, and buffers until the simulated task starts running; from then on it forwards live.
The messages that end a prompt are not forwarded: the scheduler sends them when the
simulated task's own status changes, so the socket never runs ahead of the outputs reply.
Queue `status` broadcasts are not forwarded either (the simulator sends its own)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import aiohttp

from ..progress import TERMINAL, TaskFeed

log = logging.getLogger("rhsim.executor.relay")


class PromptRelay:
    def __init__(self, ws_url: str, prompt_id: str, *, timeout_seconds: float):
        self.ws_url = ws_url
        self.prompt_id = prompt_id
        self.timeout_seconds = timeout_seconds
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._buffer: list[dict] = []
        self._feed: TaskFeed | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True,
                                        name=f"rhsim-relay-{prompt_id[:8]}")

    def start(self, connect_timeout: float = 5.0) -> bool:
        """Connects; False (and a warning) when ComfyUI's socket cannot be reached."""
        self._thread.start()
        if not self.connected.wait(connect_timeout):
            log.warning("prompt %s: ComfyUI websocket %s not reachable; no live progress", self.prompt_id,
                        self.ws_url)
            return False
        return True

    def stop(self) -> None:
        """Closes the relay (the prompt was refused, or the task is cancelled)."""
        loop, socket = self._loop, self._socket
        if loop is not None and socket is not None:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(socket.close()))

    def attach(self, feed: TaskFeed) -> None:
        """From now on messages go to `feed`; what arrived before is sent first."""
        with self._lock:
            self._feed, buffered, self._buffer = feed, self._buffer, []
        for msg in buffered:
            feed.publish(msg)

    def _forward(self, msg: dict) -> None:
        with self._lock:
            feed = self._feed
            if feed is None:
                self._buffer.append(msg)
        if feed is not None:
            feed.publish(msg)

    def _belongs(self, msg: dict) -> bool:
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        return data.get("prompt_id") == self.prompt_id

    async def _listen(self) -> None:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(self.ws_url, receive_timeout=self.timeout_seconds) as socket:
                    self._loop, self._socket = asyncio.get_running_loop(), socket
                    self.connected.set()
                    async for frame in socket:
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            continue  # binary preview images are not relayed
                        msg = json.loads(frame.data)
                        if not self._belongs(msg):
                            continue
                        if msg.get("type") in TERMINAL:
                            return
                        if not (msg.get("type") == "executing" and msg["data"].get("node") is None):
                            self._forward(msg)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("prompt %s: ComfyUI websocket relay ended: %s", self.prompt_id, exc)
