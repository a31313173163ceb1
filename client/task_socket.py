"""Following a task's websocket (`netWssUrl`) in the background: progress and an early
"it ended" hint for the wait (client/polling.py).

`SocketFeed` is the socket as client/polling.wait_for_task sees it: opened once per wait,
closed with it. `TaskSocket.open(url, site, workflow)` checks the address and starts a daemon thread that
runs aiohttp's websocket client (in every ComfyUI install; imported only here, lazily)
and folds each message into a `RemoteProgress` (client/remote_progress.py). The wait
reads `progress`, sleeps on `wait_for_news`, and `close()`s it when it ends.

- **The address is hostile**: only `ws`/`wss`, only to the site's own host name (the
  custom base URL's host), `wss` when the site is https, no user info. It may carry tokens
  in its query: logs show `describe_url` (scheme, host and path) only.
- **Drops**: a dropped socket is reconnected at most `RECONNECTS` times with backoff, then
  given up quietly: the wait polls on its own schedule (`healthy` turns false).
- **Stops**: the thread inherits the run's stop (client/stop.py, a context variable) and
  ends within `stop.TICK` of it, or of `close()`.
- **What it heard, whole**: `heard_success(prompt_id)` gives the prompt's `executed`
  outputs once its `execution_success` came, when one connection heard it all (never
  dropped): the native run may take that for the prompt's history (remote/native_follow.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .redact import scrub, scrub_tree
from .remote_progress import RemoteProgress, follow, start
from .sites import Site
from .stop import stop_requested

log = logging.getLogger("runninghub_bridge.client")

RECONNECTS = 3
RECONNECT_DELAYS = (0.5, 1.0, 2.0)
CONNECT_TIMEOUT = 5.0
MAX_MESSAGE = 1 << 20  # bytes of one message
MAX_URL = 2048
CHECK_EVERY = 0.05  # seconds between checks of the stop while reading
MAX_OUTPUT_NODES = 1000  # `executed` outputs kept per socket


def describe_url(url: Any) -> str:
    """`scheme://host/path` of an address, without its query (which may hold tokens) and
    with any key in its path hidden (`/proxy/<key>` addresses carry one)."""
    try:
        parts = urlsplit(str(url)[:MAX_URL])
        return scrub(f"{parts.scheme}://{parts.hostname or '?'}{parts.path[:80]}")
    except ValueError:
        return "(unreadable address)"


def checked_url(url: Any, site: Site) -> str | None:
    """`url` when the pack may connect to it for `site`, else None (logged, scrubbed)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL or any(c.isspace() for c in url):
        return None
    try:
        parts, home = urlsplit(url), urlsplit(site.base_url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    allowed = {"https": ("wss",), "http": ("ws", "wss")}.get(home.scheme, ())
    if parts.scheme not in allowed or parts.username or parts.password or not parts.hostname \
            or parts.hostname != (home.hostname or ""):
        log.warning("ignoring a task socket address for another host or scheme: %s", describe_url(url))
        return None
    return url


class TaskSocket:
    """One task's websocket, followed in a thread of its own."""

    def __init__(self, url: str, workflow: Mapping[str, Any] | None = None, *, label: str = "",
                 on_message: Callable[[dict], None] | None = None):
        self.url, self.workflow, self.label = url, workflow, label or describe_url(url)
        self.on_message = on_message  # sees each decoded message in the socket's thread: must not block
        self._progress = start(workflow)
        self._lock = threading.Lock()
        self._news = threading.Event()
        self._closed = threading.Event()
        self._connected = False
        self._ever_connected = threading.Event()
        self._connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the thread's, and its wake-up on close
        self._wake: asyncio.Event | None = None
        self._outputs: dict[str, dict] = {}  # node id -> its `executed` output, of the prompt followed
        self._gave_up = False
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, url: Any, site: Site, workflow: Mapping[str, Any] | None = None, *,
             label: str = "", on_message: Callable[[dict], None] | None = None) -> "TaskSocket | None":
        """A started socket follower, or None when `url` is not one to connect to."""
        checked = checked_url(url, site)
        if checked is None:
            return None
        socket = cls(checked, workflow, label=label, on_message=on_message)
        socket._thread = threading.Thread(target=contextvars.copy_context().run, args=(socket._run,),
                                          name="rh-task-socket", daemon=True)
        socket._thread.start()
        return socket

    def set_workflow(self, workflow: Mapping[str, Any] | None) -> None:
        """The remote workflow that names the nodes, when it was not known at `open` (before
        the socket heard of a prompt)."""
        with self._lock:
            self.workflow = workflow
            fresh = start(workflow)
            self._progress = replace(self._progress, nodes_total=fresh.nodes_total)

    # -- what the wait reads -----------------------------------------------------------------

    @property
    def progress(self) -> RemoteProgress:
        with self._lock:
            return self._progress

    @property
    def healthy(self) -> bool:
        """Connected and heard from: the wait may poll at its heartbeat only."""
        with self._lock:
            return self._connected and self._progress.messages > 0 and self._progress.ended is None

    @property
    def gave_up(self) -> bool:
        return self._gave_up

    def wait_connected(self, timeout: float) -> bool:
        """Block until the socket is connected and heard its first message (ComfyUI's
        `status`, sent once the server has registered the client: True), it gave up, or
        `timeout` s passed. A ComfyUI sends a client's messages only while it is connected:
        open the socket and wait for it before submitting, so no message is missed."""
        deadline = time.monotonic() + timeout
        while not self._ever_connected.wait(min(CHECK_EVERY, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or self._gave_up or not (self._thread and self._thread.is_alive()):
                return self._ever_connected.is_set()
        return True

    def heard_success(self, prompt_id: str) -> dict[str, dict] | None:
        """`{node_id: output}` of every `executed` message of `prompt_id`, once its
        `execution_success` came over the one connection this socket ever made (a
        reconnect may have missed some); else None. Whole only if that connection was open
        before the prompt was sent: the caller knows (`wait_connected` before submitting)."""
        with self._lock:
            progress = self._progress
            if self._connections != 1 or progress.ended != "success" or progress.prompt_id != prompt_id:
                return None
            return dict(self._outputs)

    def wait_for_news(self, timeout: float) -> bool:
        """Sleep up to `timeout` s; True (at once) when a message came since the last call."""
        news = self._news.wait(timeout)
        self._news.clear()
        return news

    def close(self, timeout: float = 1.0, *, wait: bool = True) -> None:
        """Stop following: the reader wakes at once. `wait`: until the thread ended (at
        most `timeout` s); without it the thread winds down (closes the connection) on its
        own, off the caller's path."""
        self._closed.set()
        self._news.set()
        with self._lock:
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has closed: the thread is ending anyway
                pass
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the thread --------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._closed.is_set() or stop_requested()

    def _run(self) -> None:
        try:
            asyncio.run(self._follow())
        except Exception as exc:  # never let the follower take the run down
            log.warning("task socket %s failed (%s); polling instead", self.label, type(exc).__name__)
        finally:
            self._set_connected(False)
            self._news.set()

    async def _follow(self) -> None:
        import aiohttp

        with self._lock:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        if self._closed.is_set():
            return

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(RECONNECTS + 1):
                if attempt and not await self._pause(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS)) - 1]):
                    return
                if await self._session(session, aiohttp) or self._stopping():
                    return
                log.info("task socket %s dropped (attempt %d of %d)", self.label, attempt + 1, RECONNECTS + 1)
        self._gave_up = True
        log.info("task socket %s: giving up, polling instead", self.label)

    async def _session(self, session, aiohttp) -> bool:
        """One connection; True when there is nothing more to hear (the task ended, or stop)."""
        try:
            async with session.ws_connect(self.url, max_msg_size=MAX_MESSAGE, heartbeat=20.0,
                                          autoclose=True, autoping=True) as ws:
                self._set_connected(True)
                return await self._read(ws, aiohttp)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.debug("task socket %s: %s", self.label, type(exc).__name__)
            return False
        finally:
            self._set_connected(False)

    async def _read(self, ws, aiohttp) -> bool:
        reader = asyncio.ensure_future(ws.receive())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            while True:
                done, _ = await asyncio.wait({reader, woken}, timeout=CHECK_EVERY,
                                             return_when=asyncio.FIRST_COMPLETED)
                if self._stopping():
                    return True
                done.discard(woken)
                if not done:
                    continue
                msg = reader.result()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR):
                    return self.progress.ended is not None
                if msg.type == aiohttp.WSMsgType.TEXT and self._take(msg.data):
                    return True
                reader = asyncio.ensure_future(ws.receive())
        finally:
            reader.cancel()
            woken.cancel()

    def _take(self, text: str) -> bool:
        """Fold one text message in; True once the remote says the prompt is over."""
        try:
            msg = json.loads(text)
        except ValueError:
            return False
        if self.on_message is not None and isinstance(msg, dict):
            try:
                self.on_message(msg)
            except Exception:  # noqa: BLE001 - a listener never takes the socket down
                log.exception("task socket %s: message listener failed", self.label)
        with self._lock:
            self._progress = follow(self._progress, msg, self.workflow)
            self._keep_output(msg)
            ended = self._progress.ended is not None and self._progress.node_id is None
        self._ever_connected.set()
        self._news.set()
        return ended

    async def _pause(self, seconds: float) -> bool:
        """Sleep `seconds` in slices; False when stopped meanwhile."""
        left = seconds
        while left > 0:
            if self._stopping():
                return False
            await asyncio.sleep(min(CHECK_EVERY, left))
            left -= CHECK_EVERY
        return not self._stopping()

    def _keep_output(self, msg: Any) -> None:
        """An `executed` message's output, when it is of the prompt followed (under the lock)."""
        data = msg.get("data") if isinstance(msg, dict) and msg.get("type") == "executed" else None
        if not isinstance(data, dict) or not isinstance(data.get("output"), dict) \
                or data.get("prompt_id") is None or str(data["prompt_id"]) != self._progress.prompt_id:
            return
        node = data.get("node")
        if isinstance(node, (str, int)) and not isinstance(node, bool) and str(node) \
                and (str(node) in self._outputs or len(self._outputs) < MAX_OUTPUT_NODES):
            self._outputs[str(node)] = scrub_tree(data["output"])  # network text: an echoed key stops here

    def _set_connected(self, connected: bool) -> None:
        with self._lock:
            self._connected = connected
            self._connections += 1 if connected else 0


def opener(site: Site, *, workflow: Callable[[], Mapping[str, Any] | None] = lambda: None,
           label: str = "") -> Callable[[str], "TaskSocket | None"]:
    """`open_socket` for client/polling.wait_for_task: follows an address for `site`, with
    the remote workflow (fetched only when a socket opens) naming the nodes."""
    def open_socket(url: str) -> TaskSocket | None:
        return TaskSocket.open(url, site, workflow(), label=label)
    return open_socket


OpenSocket = Callable[[str], "TaskSocket | None"]


class SocketFeed:
    """The task's socket as one wait sees it: opened once, closed with the wait."""

    def __init__(self, task_id: str, open_socket: OpenSocket | None):
        self.task_id, self.open_socket = task_id, open_socket
        self.socket: TaskSocket | None = None
        self.ended_seen = False

    def follow(self, url: str | None) -> None:
        """Start following the socket at `url` (once per wait: a socket that gave up, or an
        address not to follow, is not tried again)."""
        if url and self.open_socket is not None and self.socket is None:
            self.socket = self.open_socket(url)
            self.open_socket = None

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()

    @property
    def healthy(self) -> bool:
        return self.socket is not None and self.socket.healthy

    def remote(self) -> RemoteProgress | None:
        progress = self.socket.progress if self.socket is not None else None
        return progress if progress is not None and progress.messages else None

    def says_ended(self) -> bool:
        """True once, when the socket first says the remote prompt is over."""
        if self.socket is None or self.ended_seen or self.socket.progress.ended is None:
            return False
        self.ended_seen = True
        log.debug("task %s: the socket says it ended (%s); polling outputs now", self.task_id,
                  self.socket.progress.ended)
        return True

    def nap(self, seconds: float, sleep: Callable[[float], None]) -> bool:
        """Sleep `seconds`; True (early) when the socket had news."""
        if self.socket is None:
            sleep(seconds)
            return False
        return self.socket.wait_for_news(seconds)
