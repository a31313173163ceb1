"""A task's progress as ComfyUI's websocket messages: the feed that sockets read, the
plausible sequence the built-in executor plays over a task's running time, and the final
messages every executor ends with.

Shapes follow ComfyUI's server (execution.py, main.py, server.py): `{"type": ..., "data": ...}`
with `execution_start`, `execution_cached`, `executing` (node id, null at the end), `progress`
(`{value, max, prompt_id, node}`), `executed`, `execution_success` / `execution_error` /
`execution_interrupted`, `progress_state` (`{prompt_id, nodes: {id: {value, max, state, ...}}}`,
0.3.75's per-node states, sent when a node starts, advances and finishes) and `status`
(`{status: {exec_info: {queue_remaining}}}`)."""

from __future__ import annotations

import json
import threading
import time
from typing import Callable

Message = dict
Sink = Callable[[Message], None]

# The messages that end a prompt: held back by relays and sent by the scheduler once the
# task's own status has changed (the socket never runs ahead of the outputs reply).
TERMINAL = ("execution_success", "execution_error", "execution_interrupted")
IMAGE_TYPES = ("png", "jpg", "jpeg", "webp", "gif")
VIDEO_TYPES = ("mp4", "webm", "mov", "mkv", "avi")


def message(kind: str, data: dict, stamped: bool = False) -> Message:
    """One websocket message; `stamped` adds ComfyUI's millisecond `timestamp`."""
    return {"type": kind, "data": {**data, "timestamp": int(time.time() * 1000)} if stamped else data}


def status_message(queue_remaining: int, sid: str | None = None) -> Message:
    data: dict = {"status": {"exec_info": {"queue_remaining": queue_remaining}}}
    if sid is not None:
        data["sid"] = sid
    return message("status", data)


class TaskFeed:
    """One task's messages, fanned out to the sockets attached at the time (like ComfyUI, a
    socket sees only what happens after it connects, plus the node running now). A socket
    that connects after the end hears how it ended: on the real service a task never ends
    before its create reply is read, but the simulator's instant tasks (`--run-seconds 0`)
    do, and a client waiting on the socket for the end would otherwise wait forever."""

    def __init__(self, prompt_id: str):
        self.prompt_id = prompt_id
        self._lock = threading.Lock()
        self._sinks: list[Sink] = []
        self.current_node: str | None = None
        self._started: list[str] = []  # nodes announced by `executing`, in order
        self._states: dict[str, dict] = {}  # ComfyUI's non-pending node states, for progress_state
        self._ending: list[Message] = []  # the end message and the `executing` null after it

    def attach(self, sink: Sink) -> tuple[str | None, list[Message]]:
        """Adds a socket; returns the node executing now (ComfyUI re-sends it on connect) and,
        once the task has ended, the messages that ended it (for the socket to send first)."""
        with self._lock:
            self._sinks.append(sink)
            return self.current_node, list(self._ending)

    def detach(self, sink: Sink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def publish(self, msg: Message) -> None:
        with self._lock:
            if msg["type"] == "executing":
                self.current_node = msg["data"].get("node")
                if self.current_node is not None:
                    self._started.append(self.current_node)
                elif self._ending:
                    self._ending.append(msg)
            elif msg["type"] in TERMINAL:
                self._ending = [msg]
            sinks = list(self._sinks)
        for sink in sinks:
            sink(msg)

    def send(self, kind: str, data: dict, stamped: bool = False) -> None:
        self.publish(message(kind, {**data, "prompt_id": self.prompt_id}, stamped))

    def node_state(self, node_id: str, state: str, value: float | None = None, maximum: float | None = None) -> None:
        """Sends `progress_state` after node `node_id` became `state` (running / finished)."""
        with self._lock:
            entry = self._states.setdefault(node_id, {"value": 0.0, "max": 1.0})
            if maximum is not None:
                entry["max"] = float(maximum)
            entry["value"] = entry["max"] if state == "finished" else float(value or 0.0)
            entry["state"] = state
            nodes = {nid: {**e, "node_id": nid, "prompt_id": self.prompt_id, "display_node_id": nid,
                           "parent_node_id": None, "real_node_id": nid} for nid, e in self._states.items()}
        self.publish(message("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes}))

    # -- the end of a prompt --------------------------------------------------
    def succeeded(self) -> None:
        self.send("execution_success", {}, stamped=True)
        self.send("executing", {"node": None})

    def failed(self, reason: dict, graph: dict) -> None:
        node_id = reason.get("node_id", "")
        executed = _json_list(reason.get("current_outputs"))
        self.send("execution_error", {
            "node_id": node_id, "node_type": reason.get("node_name") or graph.get(node_id, {}).get("class_type", ""),
            "executed": executed, "exception_message": reason.get("exception_message", ""),
            "exception_type": reason.get("exception_type", ""), "traceback": _json_list(reason.get("traceback")),
            "current_inputs": _json_value(reason.get("current_inputs")), "current_outputs": executed,
        }, stamped=True)
        self.send("executing", {"node": None})

    def interrupted(self, graph: dict) -> None:
        """Cancelled mid-run: names the node running now; `executed` = the nodes before it."""
        node_id = self.current_node or ""
        executed = [n for n in self._started if n != node_id]
        self.send("execution_interrupted", {
            "node_id": node_id, "node_type": graph.get(node_id, {}).get("class_type", ""), "executed": executed,
        }, stamped=True)
        self.send("executing", {"node": None})


def _json_list(value) -> list:
    value = _json_value(value)
    return value if isinstance(value, list) else []


def _json_value(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def ui_output(files) -> dict:
    """What ComfyUI's `executed` message carries for a save node's files."""
    ui: dict = {}
    for f in files:
        item = {"filename": f.name, "subfolder": "", "type": "output"}
        if f.file_type in IMAGE_TYPES:
            ui.setdefault("images", []).append(item)
        elif f.file_type in VIDEO_TYPES:
            ui.setdefault("images", []).append(item)
            ui["animated"] = [True]
        elif f.text is not None:
            ui.setdefault("text", []).append(f.text)
        else:
            ui.setdefault("audio", []).append(item)
    return ui


def sampler_node(graph: dict, executed: list[str], output_ids: set[str]) -> str | None:
    """The node that reports steps: one with an int `steps` input, else the last node that
    is not a save node (the one doing the work), else the first."""
    for node_id in executed:
        if isinstance(graph.get(node_id, {}).get("inputs", {}).get("steps"), int):
            return node_id
    work = [n for n in executed if n not in output_ids]
    return work[-1] if work else (executed[0] if executed else None)


def play_builtin(feed: TaskFeed, graph: dict, executed: list[str], files, seconds: float, steps: int,
                 cancel: threading.Event, failed: bool = False) -> None:
    """Sends a plausible ComfyUI sequence for an already computed graph, spread over
    `seconds`: the sampler-like node reports `steps` progress steps evenly (0: none); save
    nodes report `executed` with their files; with `failed`, the last node never finishes.
    Returns early when `cancel` is set."""
    deadline = time.monotonic() + max(0.0, seconds)
    by_node: dict[str, list] = {}
    for f in files:
        by_node.setdefault(f.node_id, []).append(f)
    sampler = sampler_node(graph, executed, set(by_node))
    total = graph.get(sampler, {}).get("inputs", {}).get("steps") if sampler else None
    total = total if isinstance(total, int) and total > 0 else steps
    feed.send("execution_start", {}, stamped=True)
    feed.send("execution_cached", {"nodes": []}, stamped=True)
    for position, node_id in enumerate(executed, 1):
        feed.node_state(node_id, "running")
        feed.send("executing", {"node": node_id, "display_node": node_id})
        if node_id == sampler and total > 0:
            start, span = time.monotonic(), max(0.0, deadline - time.monotonic())
            for value in range(1, total + 1):
                if cancel.wait(max(0.0, start + span * value / total - time.monotonic())):
                    return
                feed.node_state(node_id, "running", value, total)
                feed.send("progress", {"value": value, "max": total, "node": node_id})
        if node_id in by_node:
            feed.send("executed", {"node": node_id, "display_node": node_id, "output": ui_output(by_node[node_id])})
        if not (failed and position == len(executed)):
            feed.node_state(node_id, "finished")
    cancel.wait(max(0.0, deadline - time.monotonic()))
