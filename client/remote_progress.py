"""What a task's websocket says about its progress, as one typed record.

The socket at a task's `netWssUrl` speaks ComfyUI's websocket protocol for the task's
prompt (`status`, `execution_start`, `execution_cached`, `executing`, `progress`,
`progress_state`, `executed`, `execution_success` / `_error` / `_interrupted`).
`follow(progress, message)` folds one decoded message into a `RemoteProgress`; nothing here
does I/O. Every field comes from the network: ids and texts are capped and scrubbed,
numbers checked.

`ended` is only a hint that the task is over (the outputs reply stays the truth): the
wait polls outputs at once when it turns true. `settled` is ComfyUI's own last word on a
prompt, `executing` with no node: a ComfyUI sends it after it wrote the prompt's history
(`execution_success` comes before that), so `/history` answers from then on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from .redact import scrub

MAX_ID = 64  # characters kept of a node id from the socket
MAX_NAME = 80  # characters kept of a node's class name

ENDINGS = {"execution_success": "success", "execution_error": "error", "execution_interrupted": "interrupted"}


@dataclass(frozen=True)
class RemoteProgress:
    """The remote ComfyUI's progress on one task."""

    node_id: str | None = None  # the remote node executing now
    node_class: str | None = None  # its class_type in the remote workflow
    value: int | None = None  # its step, when it reports steps
    max: int | None = None
    nodes_done: int = 0
    nodes_total: int | None = None  # nodes of the remote workflow, when known
    ended: str | None = None  # "success", "error", "interrupted" or "done" (executing null)
    messages: int = 0  # messages folded in so far
    prompt_id: str | None = None  # the remote prompt, from its first message that names one
    done_ids: frozenset = frozenset()
    settled: bool = False  # `executing` with no node came: the prompt's history is written

    def describe(self) -> str:
        """`KSampler (#3) 12/20, nodes 2/5` — the part of a status line about the remote."""
        parts = []
        if self.node_id is not None:
            name = f"{self.node_class} (#{self.node_id})" if self.node_class else f"node #{self.node_id}"
            steps = f" {self.value}/{self.max}" if self.value is not None and self.max else ""
            parts.append(name + steps)
        if self.nodes_total:
            parts.append(f"nodes {min(self.nodes_done, self.nodes_total)}/{self.nodes_total}")
        return ", ".join(parts)


def start(workflow: Mapping[str, Any] | None) -> RemoteProgress:
    """The progress before any message, knowing the remote workflow (API format) if given."""
    return RemoteProgress(nodes_total=len(workflow) if isinstance(workflow, Mapping) and workflow else None)


def follow(progress: RemoteProgress, msg: Any, workflow: Mapping[str, Any] | None = None) -> RemoteProgress:
    """`progress` after the decoded socket message `msg` (anything: junk is ignored)."""
    if not isinstance(msg, dict) or not isinstance(msg.get("data"), dict):
        return progress
    kind, data = msg.get("type"), msg["data"]
    progress = replace(progress, messages=progress.messages + 1)
    prompt_id = _node_id(data.get("prompt_id"))
    if prompt_id is not None:
        if progress.prompt_id is None:
            progress = replace(progress, prompt_id=prompt_id)
        elif prompt_id != progress.prompt_id:
            return progress  # another prompt's message
    if kind == "executing":
        return _executing(progress, data, workflow)
    if kind == "progress":
        return _step(progress, data, workflow)
    if kind == "execution_cached":
        nodes = data.get("nodes")
        return _done(progress, [_node_id(n) for n in nodes] if isinstance(nodes, list) else [])
    if kind == "executed":
        return _done(progress, [_node_id(data.get("node"))])
    if kind == "progress_state":
        return _progress_state(progress, data)
    if kind in ENDINGS:
        return replace(progress, ended=ENDINGS[kind])
    return progress


def _executing(progress: RemoteProgress, data: dict, workflow) -> RemoteProgress:
    if "node" not in data or (data["node"] is not None and _node_id(data["node"]) is None):
        return progress  # junk, not the end of the prompt
    node = _node_id(data["node"])
    finished = [progress.node_id] if progress.node_id is not None and progress.node_id != node else []
    progress = _done(progress, finished)
    if node is None:
        return replace(progress, node_id=None, node_class=None, value=None, max=None,
                       ended=progress.ended or "done", settled=True)
    if node == progress.node_id:
        return progress
    return replace(progress, node_id=node, node_class=_class_of(workflow, node), value=None, max=None)


def _step(progress: RemoteProgress, data: dict, workflow) -> RemoteProgress:
    value, most = _count(data.get("value")), _count(data.get("max"))
    if value is None or not most:
        return progress
    node = _node_id(data.get("node")) or progress.node_id
    node_class = progress.node_class if node == progress.node_id else _class_of(workflow, node)
    return replace(progress, node_id=node, node_class=node_class, value=min(value, most), max=most)


def _progress_state(progress: RemoteProgress, data: dict) -> RemoteProgress:
    nodes = data.get("nodes")
    if not isinstance(nodes, dict):
        return progress
    finished = [_node_id(k) for k, v in nodes.items() if isinstance(v, dict) and v.get("state") == "finished"]
    return _done(progress, finished)


def _done(progress: RemoteProgress, node_ids: list) -> RemoteProgress:
    done = progress.done_ids | {n for n in node_ids if n is not None}
    if len(done) == len(progress.done_ids):
        return progress
    return replace(progress, done_ids=frozenset(done), nodes_done=len(done))


def _node_id(value: Any) -> str | None:
    """A node or prompt id from the network: capped, and scrubbed (it is shown in status
    lines: a remote echoing a key there has it hidden)."""
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    text = scrub(str(value).strip()[:MAX_ID])
    return text or None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return max(0, min(int(value), 10 ** 9))


def _class_of(workflow: Mapping[str, Any] | None, node_id: str | None) -> str | None:
    if not isinstance(workflow, Mapping) or node_id is None:
        return None
    node = workflow.get(node_id)
    name = node.get("class_type") if isinstance(node, dict) else None
    return str(name)[:MAX_NAME] if isinstance(name, str) and name else None
