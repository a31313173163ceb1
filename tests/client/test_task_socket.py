"""The task socket follower (client/task_socket.py) against the simulator's real websocket
over loopback: on, drop, silent and off; hostile addresses; stops within a tick."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import pytest
from aiohttp import web

from support.pack import pack_module
from support.simulator import WORKFLOWS

records = pack_module("client.records")
remote_progress = pack_module("client.remote_progress")
sites = pack_module("client.sites")
stop = pack_module("client.stop")
task_socket = pack_module("client.task_socket")


def running_url(client, sim, workflow="invert", **settings) -> tuple[str, str]:
    """(task id, netWssUrl) of a task that runs for a while; the socket opened right after
    create still sees (nearly) the whole run."""
    sim.configure(**settings)
    handle = client.create_task(WORKFLOWS[workflow], [])
    assert handle.state is records.TaskState.RUNNING and handle.net_wss_url
    return handle.task_id, handle.net_wss_url


def follow_to_end(socket, limit: float = 20.0) -> list:
    """Every distinct progress the socket showed until it ended or gave up."""
    seen = [socket.progress]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and socket.progress.ended is None and not socket.gave_up:
        socket.wait_for_news(0.1)
        if socket.progress != seen[-1]:
            seen.append(socket.progress)
    return seen


def test_follows_a_run_to_its_end_with_node_names_and_steps(client, sim):
    workflow = client.workflow_api_json(WORKFLOWS["invert"])
    _, url = running_url(client, sim, run_seconds=2.0, progress_steps=5)
    socket = task_socket.TaskSocket.open(url, client.site, workflow)
    try:
        seen = follow_to_end(socket)
    finally:
        socket.close()
    last = seen[-1]
    assert last.ended in ("success", "done") and last.nodes_total == 3
    steps = [p.value for p in seen if p.value is not None]
    assert len(set(steps)) >= 3 and steps == sorted(steps) and max(steps) <= 5  # sampled: not every step
    assert {p.node_class for p in seen if p.value is not None} == {"ImageInvert"}
    assert [p.max for p in seen if p.value is not None][-1] == 5
    assert max(p.nodes_done for p in seen) >= 2
    assert "ImageInvert (#2)" in next(p for p in seen if p.value is not None).describe()


def test_gives_up_quietly_after_a_few_drops(client, sim):
    _, url = running_url(client, sim, run_seconds=8.0, websocket="drop", websocket_drop_after=2)
    socket = task_socket.TaskSocket.open(url, client.site)
    try:
        deadline = time.monotonic() + 10
        while not socket.gave_up and time.monotonic() < deadline:
            socket.wait_for_news(0.1)
        assert socket.gave_up and not socket.healthy
    finally:
        socket.close()
    assert sim.count("ws") == 1 + task_socket.RECONNECTS  # a few reconnects, not more


def test_a_silent_socket_is_connected_but_not_healthy(client, sim):
    _, url = running_url(client, sim, run_seconds=3.0, websocket="silent")
    socket = task_socket.TaskSocket.open(url, client.site)
    try:
        assert not socket.wait_for_news(1.0)
        assert not socket.healthy and socket.progress.messages == 0
    finally:
        socket.close()


def test_a_refused_socket_gives_up(client, sim):
    _, url = running_url(client, sim, run_seconds=8.0)
    sim.configure(websocket="off")
    socket = task_socket.TaskSocket.open(url, client.site)
    try:
        deadline = time.monotonic() + 10
        while not socket.gave_up and time.monotonic() < deadline:
            socket.wait_for_news(0.1)
        assert socket.gave_up
    finally:
        socket.close()


def test_stops_within_a_tick_of_the_runs_stop(client, sim):
    _, url = running_url(client, sim, run_seconds=10.0)
    stopped = {"at": None}

    def should_stop():
        return stopped["at"] is not None

    with stop.stop_when(should_stop):
        socket = task_socket.TaskSocket.open(url, client.site)
    assert socket.wait_for_news(5.0)  # connected and hearing
    stopped["at"] = time.monotonic()
    socket._thread.join(5.0)
    assert not socket._thread.is_alive()
    assert time.monotonic() - stopped["at"] <= stop.TICK


def test_close_ends_the_thread_at_once(client, sim):
    _, url = running_url(client, sim, run_seconds=10.0, websocket="silent")
    socket = task_socket.TaskSocket.open(url, client.site)
    time.sleep(0.3)
    started = time.monotonic()
    socket.close()
    assert not socket._thread.is_alive() and time.monotonic() - started <= stop.TICK


SITE_CN = sites.resolve_site("cn")
SIM_LIKE = sites.resolve_site(base_url="http://127.0.0.1:8765")


@pytest.mark.parametrize("url, site, ok", [
    ("wss://www.runninghub.cn/ws?clientId=abc", SITE_CN, True),
    ("wss://www.runninghub.cn:443/ws?clientId=abc&token=t", SITE_CN, True),
    ("ws://www.runninghub.cn/ws?clientId=abc", SITE_CN, False),  # no plain text from an https site
    ("wss://evil.example/ws?clientId=abc", SITE_CN, False),
    ("wss://www.runninghub.cn.evil.example/ws", SITE_CN, False),
    ("wss://user:pw@www.runninghub.cn/ws", SITE_CN, False),
    ("https://www.runninghub.cn/ws", SITE_CN, False),
    ("file:///etc/passwd", SITE_CN, False),
    ("wss://www.runninghub.cn:99999/ws", SITE_CN, False),
    ("wss://www.runninghub.cn/ws?a=" + "x" * 3000, SITE_CN, False),
    ("wss://www.runninghub.cn/ws\n?x", SITE_CN, False),
    (None, SITE_CN, False),
    ({"url": "x"}, SITE_CN, False),
    ("ws://127.0.0.1:9999/ws?clientId=abc", SIM_LIKE, True),
    ("ws://localhost:8765/ws?clientId=abc", SIM_LIKE, False),
])
def test_only_the_sites_own_host_is_followed(url, site, ok):
    assert (task_socket.checked_url(url, site) is not None) is ok


def test_the_address_is_never_logged_with_its_query(caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wss://evil.example/ws?clientId=abc&token=SECRETTOKEN123"
    assert task_socket.TaskSocket.open(secret, SITE_CN) is None
    assert "SECRETTOKEN123" not in caplog.text and "evil.example/ws" in caplog.text


def test_hostile_messages_are_ignored_or_capped():
    workflow = {"3": {"class_type": "KSampler", "inputs": {}}, "4": {"class_type": "SaveImage", "inputs": {}}}
    p = remote_progress.start(workflow)
    for junk in (None, "x", [], {"type": "progress"}, {"type": "progress", "data": []},
                 {"type": "progress", "data": {"value": "7", "max": 20}},
                 {"type": "progress", "data": {"value": float("nan"), "max": 20}},
                 {"type": "progress", "data": {"value": True, "max": 20}},
                 {"type": "executing", "data": {"node": {"x": 1}}}):
        p = remote_progress.follow(p, junk, workflow)
    assert p.node_id is None and p.value is None and p.ended is None
    p = remote_progress.follow(p, {"type": "progress", "data": {"value": 50, "max": 20, "node": "3" * 500,
                                                                 "prompt_id": "p1"}}, workflow)
    assert len(p.node_id) == remote_progress.MAX_ID and p.value == 20 and p.node_class is None
    p = remote_progress.follow(p, {"type": "executing", "data": {"node": "3"}}, workflow)
    p = remote_progress.follow(p, {"type": "progress", "data": {"value": 4, "max": 20, "node": "3"}}, workflow)
    assert (p.node_class, p.value, p.max, p.nodes_total) == ("KSampler", 4, 20, 2)
    other = remote_progress.follow(p, {"type": "executing", "data": {"node": None, "prompt_id": "other"}}, workflow)
    assert other.ended is None and other.node_id == "3"  # the prompt is the first one named
    p = remote_progress.follow(p, {"type": "executing", "data": {"node": None}}, workflow)
    assert p.ended == "done" and p.nodes_done == 2 and p.node_id is None
    key_like = "0123456789abcdef" * 2  # a remote that names a node with a key: it is not shown
    p = remote_progress.follow(remote_progress.start(workflow),
                               {"type": "executing", "data": {"node": key_like, "prompt_id": "p2"}}, workflow)
    assert p.node_id and key_like not in p.node_id and key_like not in p.describe()


def test_the_end_settles_at_executing_null_after_execution_success():
    """ComfyUI sends `execution_success` before it writes the history and `executing` null
    after: `settled` tells the wait when one /history call will find the prompt."""
    p = remote_progress.start(None)
    for msg in ({"type": "executing", "data": {"node": "4", "prompt_id": "p1"}},
                {"type": "execution_success", "data": {"prompt_id": "p1"}}):
        p = remote_progress.follow(p, msg)
    assert p.ended == "success" and not p.settled
    p = remote_progress.follow(p, {"type": "executing", "data": {"node": None, "prompt_id": "p1"}})
    assert p.ended == "success" and p.settled


def test_a_key_in_the_address_path_is_never_shown(client, sim, caplog):
    caplog.set_level(logging.DEBUG)
    key = sim.keys[0]
    url = f"wss://evil.example/proxy/{key}/ws?clientId=abc"
    assert key not in task_socket.describe_url(url)
    assert task_socket.TaskSocket.open(url, client.site) is None
    handle = records.TaskHandle.parse({"taskId": "1", "netWssUrl": url})
    assert key not in repr(handle) and key not in caplog.text


class ScriptedSocketServer:
    """A websocket server on loopback that plays one script of messages per connection, then
    closes it (a drop when more scripts follow): what a socket hears across reconnects."""

    def __init__(self, scripts: list[list[dict]]):
        self.scripts = list(scripts)
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "ScriptedSocketServer":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def site(self):
        return sites.resolve_site(base_url=f"http://127.0.0.1:{self.port}")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?clientId=scripted"

    async def _handle(self, request):
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        for msg in script:
            await socket.send_str(json.dumps(msg))
        await socket.close()
        return socket

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())


def _msg(kind: str, prompt_id: str = "p1", **data) -> dict:
    return {"type": kind, "data": {**data, "prompt_id": prompt_id}}


IMAGES = {"images": [{"filename": "out_00001_.png", "subfolder": "", "type": "output"}]}
WHOLE_RUN = [{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}, "sid": "scripted"}},
             _msg("execution_start"), _msg("executing", node="7"), _msg("executed", node="7", output=IMAGES),
             _msg("executed", node="8", output={"text": ["hello"]}), _msg("executed", "another", node="9", output={}),
             _msg("execution_success"), _msg("executing", node=None)]


def heard_until_ended(server: ScriptedSocketServer, limit: float = 10.0):
    socket = task_socket.TaskSocket.open(server.url, server.site)
    try:
        deadline = time.monotonic() + limit
        while socket.progress.ended is None and time.monotonic() < deadline:
            socket.wait_for_news(0.05)
        return socket.progress, socket.heard_success("p1"), socket.heard_success("another")
    finally:
        socket.close()


def test_a_success_heard_on_one_connection_gives_its_outputs():
    with ScriptedSocketServer([WHOLE_RUN]) as server:
        progress, heard, other = heard_until_ended(server)
    assert progress.ended == "success" and other is None
    assert heard == {"7": IMAGES, "8": {"text": ["hello"]}}  # another prompt's output is not this one's


def test_a_success_heard_after_a_reconnect_gives_nothing():
    """The first connection drops after `executed` of node 7; the second brings the rest:
    what was said in between may be lost, so the socket cannot stand for the history."""
    first, rest = WHOLE_RUN[:4], [WHOLE_RUN[0], *WHOLE_RUN[4:]]
    with ScriptedSocketServer([first, rest]) as server:
        progress, heard, _ = heard_until_ended(server)
        assert server.connections == 2
    assert progress.ended == "success" and heard is None


def test_an_error_or_no_end_gives_nothing():
    failed = [*WHOLE_RUN[:4], _msg("execution_error", node_id="7"), _msg("executing", node=None)]
    with ScriptedSocketServer([failed]) as server:
        progress, heard, _ = heard_until_ended(server)
    assert progress.ended == "error" and heard is None
