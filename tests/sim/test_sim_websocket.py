"""The task websocket at `netWssUrl`: ComfyUI's protocol for the task's prompt, and the
settings that turn it off, drop it mid-run or keep it silent."""

from __future__ import annotations

import re
import time

import pytest
import requests
import websocket

from support.simulator import WORKFLOWS, Simulator, SimulatorError
from ws_client import kinds, read_one, read_until_done, ws_url


def _connect(sim, client_id: str, timeout: float = 15) -> websocket.WebSocket:
    return websocket.create_connection(ws_url(sim, client_id), timeout=timeout)


def _queued_task(api, sim, wf: str = "invert", **settings) -> dict:
    """A task still queued, so a socket opened now sees its whole run (generous time to
    connect on a loaded machine)."""
    sim.configure(queue_seconds=1.5, **settings)
    reply = api.create(wf)
    assert reply["data"]["taskStatus"] == "QUEUED" and reply["data"]["netWssUrl"] is None
    return reply["data"]


def test_running_tasks_get_a_net_wss_url_in_create_and_804(api, sim):
    sim.configure(run_seconds=3, concurrency=1)
    running = api.create("empty")["data"]
    assert running["taskStatus"] == "RUNNING"
    assert running["netWssUrl"] == ws_url(sim, running["clientId"])
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/ws\?clientId=[0-9a-f]{32}", running["netWssUrl"])
    assert api.outputs(running["taskId"]) == {"code": 804, "msg": "APIKEY_TASK_IS_RUNNING",
                                              "data": {"netWssUrl": running["netWssUrl"]}}
    queued = api.create("empty")["data"]
    assert queued["taskStatus"] == "QUEUED" and queued["netWssUrl"] is None
    assert api.outputs(queued["taskId"])["data"] is None


def test_builtin_run_speaks_comfyui_protocol(api, sim):
    task = _queued_task(api, sim, run_seconds=1.5, progress_steps=5)
    socket = _connect(sim, task["clientId"])
    try:
        messages = read_until_done(socket)
    finally:
        socket.close()
    assert api.outputs(task["taskId"])["code"] == 0  # the socket never runs ahead of the outputs reply
    status = messages[0]
    assert status == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}},
                                                 "sid": task["clientId"]}}
    node = ["progress_state", "executing", "progress_state"]
    assert kinds(messages[1:]) == ["execution_start", "execution_cached"] + node + \
        ["progress_state", "executing"] + ["progress_state", "progress"] * 5 + ["progress_state"] + \
        ["progress_state", "executing", "executed", "progress_state", "execution_success", "executing"]
    prompt_ids = {m["data"]["prompt_id"] for m in messages[1:]}
    assert len(prompt_ids) == 1 and re.fullmatch(r"[0-9a-f-]{36}", prompt_ids.pop())
    start, cached = messages[1]["data"], messages[2]["data"]
    assert isinstance(start["timestamp"], int) and cached["nodes"] == []
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == ["1", "2", "3", None]
    assert messages[4]["data"]["display_node"] == "1"
    final_states = messages[-3]["data"]["nodes"]
    assert {n: (s["state"], s["value"], s["max"]) for n, s in final_states.items()} == {
        "1": ("finished", 1.0, 1.0), "2": ("finished", 5.0, 5.0), "3": ("finished", 1.0, 1.0)}
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert [p["value"] for p in progress] == [1, 2, 3, 4, 5]
    assert {(p["max"], p["node"]) for p in progress} == {(5, "2")}
    executed = next(m["data"] for m in messages if m["type"] == "executed")
    assert executed["node"] == "3" and executed["output"]["images"][0]["type"] == "output"
    assert executed["output"]["images"][0]["filename"].endswith(".png")
    assert set(messages[-2]["data"]) == {"prompt_id", "timestamp"}


def test_the_queue_status_follows_the_end_of_a_prompt(api, sim):
    task = _queued_task(api, sim)
    socket = _connect(sim, task["clientId"])
    try:
        read_until_done(socket)
        assert read_one(socket) == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}}
    finally:
        socket.close()


def test_progress_is_spread_over_the_running_time(api, sim):
    task = _queued_task(api, sim, run_seconds=2, progress_steps=4)
    socket = _connect(sim, task["clientId"])
    try:
        stamps = []
        while True:
            msg = read_one(socket)
            if msg["type"] == "progress":
                stamps.append(time.monotonic())
            if msg["type"] == "execution_success":
                break
    finally:
        socket.close()
    assert len(stamps) == 4 and stamps[-1] - stamps[0] >= 1.0  # 4 steps over 2 s: not all at once


def test_a_failing_node_sends_execution_error(api, sim):
    task = _queued_task(api, sim, wf="fail")
    socket = _connect(sim, task["clientId"])
    try:
        messages = read_until_done(socket)
    finally:
        socket.close()
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert error["node_id"] == "2" and error["node_type"] == "SimFail"
    assert error["executed"] == ["1"] and error["current_outputs"] == ["1"]
    assert error["exception_message"] and error["exception_type"] and isinstance(error["traceback"], list)
    assert isinstance(error["current_inputs"], dict)
    assert kinds(messages)[-2:] == ["execution_error", "executing"]
    assert "execution_success" not in kinds(messages)
    assert api.outputs(task["taskId"])["code"] == 805


def test_cancel_sends_execution_interrupted(api, sim):
    task = _queued_task(api, sim, run_seconds=5)
    socket = _connect(sim, task["clientId"])
    try:
        while read_one(socket)["type"] != "progress":
            pass
        assert api.call("cancel", {"apiKey": api.key, "taskId": task["taskId"]})["code"] == 0
        messages = read_until_done(socket)
    finally:
        socket.close()
    interrupted = next(m["data"] for m in messages if m["type"] == "execution_interrupted")
    assert interrupted["node_id"] == "2" and interrupted["node_type"] == "ImageInvert"
    assert interrupted["executed"] == ["1"]
    assert kinds(messages)[-2:] == ["execution_interrupted", "executing"]


def test_reconnecting_mid_run_gets_status_and_the_current_node(api, sim):
    task = _queued_task(api, sim, run_seconds=3)
    sim.wait_for(lambda: api.status(task["taskId"])["data"] == "RUNNING", timeout=10)
    time.sleep(0.3)
    socket = _connect(sim, task["clientId"])
    try:
        first, second = read_one(socket), read_one(socket)
    finally:
        socket.close()
    assert first["type"] == "status" and first["data"]["sid"] == task["clientId"]
    assert second == {"type": "executing", "data": {"node": "2"}}


def test_off_gives_no_url_and_refuses_the_socket(api, sim):
    sim.configure(websocket="off", run_seconds=2)
    task = api.create("empty")["data"]
    assert task["taskStatus"] == "RUNNING" and task["netWssUrl"] is None
    assert api.outputs(task["taskId"]) == {"code": 804, "msg": "APIKEY_TASK_IS_RUNNING", "data": None}
    with pytest.raises(websocket.WebSocketBadStatusException):
        _connect(sim, task["clientId"])


def test_drop_cuts_the_connection_mid_run(api, sim):
    task = _queued_task(api, sim, run_seconds=2, websocket="drop", websocket_drop_after=4)
    socket = _connect(sim, task["clientId"])
    received = []
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        while True:
            received.append(read_one(socket))
    socket.close()
    assert len(received) == 4 and "execution_success" not in kinds(received)
    assert api.wait(task["taskId"])["code"] == 0  # the task itself goes on


def test_silent_accepts_and_says_nothing(api, sim):
    task = _queued_task(api, sim, run_seconds=1, websocket="silent")
    socket = _connect(sim, task["clientId"], timeout=2.5)
    try:
        with pytest.raises(websocket.WebSocketTimeoutException):
            socket.recv()
        assert socket.connected
    finally:
        socket.close()
    assert api.wait(task["taskId"])["code"] == 0


def test_unknown_client_id_is_refused(sim):
    with pytest.raises(websocket.WebSocketBadStatusException):
        _connect(sim, "0" * 32)


def test_websocket_setting_is_checked(sim):
    with pytest.raises(SimulatorError):
        sim.configure(websocket="sometimes")


def test_sockets_are_counted(api, sim):
    task = _queued_task(api, sim)
    _connect(sim, task["clientId"]).close()
    assert sim.count("ws", api.key) == 1


def test_sigterm_stops_promptly_with_a_socket_open():
    """An open task socket must not hold the simulator up when it is told to stop."""
    with Simulator(run_seconds=60) as own:
        reply = requests.post(own.base_url + "/task/openapi/create", timeout=10,
                              json={"apiKey": own.keys[0], "workflowId": WORKFLOWS["empty"]}).json()
        socket = websocket.create_connection(reply["data"]["netWssUrl"], timeout=10)
        started = time.monotonic()
        own.process.terminate()
        assert own.process.wait(20) == 0
        assert time.monotonic() - started < 10
        socket.close()
