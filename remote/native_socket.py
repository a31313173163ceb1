"""A native prompt's id and its /ws client id, and EarlySocket: the id chosen and the
socket opened before the prompt is ready (while its inputs encode and upload)."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, Mapping

from ..client.native import NativeClient
from ..client.task_socket import TaskSocket


def new_prompt_id() -> str:
    """A uuid4 with its dashes (32 bare hex characters would look like a key to the scrub)."""
    return str(uuid.uuid4())


def client_id_for(prompt_id: str) -> str:
    """The /ws client id of a prompt: derived from it, so a re-attach after a restart
    listens on the same client."""
    return f"rh-native-{prompt_id}"


class EarlySocket:
    """A new prompt's id, chosen early, with its /ws opened early: while the prompt's inputs
    encode and upload (nodes/remote_group.py), so that the socket's connect (a TLS handshake
    away on the real service) is not waited for after them. `run_prompt(..., early=...)` submits under
    that id and follows that socket when the prompt goes to the same key; any other way the
    run goes (re-attach, another key of a pool, an error) closes it. Close it in a
    `finally` (or use it as a context manager): closing a socket handed on is a no-op."""

    def __init__(self, native: NativeClient | None, prompt_id: str, socket: TaskSocket | None):
        self.native, self.prompt_id, self.socket = native, prompt_id, socket
        self._lock = threading.Lock()

    @classmethod
    def open(cls, native: NativeClient, prompt: Mapping[str, Any] | None = None, *,
             on_executed: Callable[[str, dict], None] | None = None) -> "EarlySocket":
        """`prompt` names the remote nodes in the progress (its ids and classes are enough).
        `on_executed(node_id, output)`: the remote's `executed` messages of this prompt (its
        output's file references, before the history has them), in the socket's thread."""
        prompt_id = new_prompt_id()

        def listener(msg: dict) -> None:
            data = msg.get("data")
            if msg.get("type") == "executed" and isinstance(data, dict) and data.get("prompt_id") == prompt_id \
                    and isinstance(data.get("output"), dict) and data.get("node") is not None:
                on_executed(str(data["node"]), data["output"])
        socket = native.open_socket(client_id_for(prompt_id), prompt, label=f"native prompt {prompt_id}",
                                    on_message=listener if on_executed is not None else None)
        return cls(native, prompt_id, socket)

    def name_nodes(self, prompt: Mapping[str, Any]) -> None:
        """The prompt as it will be sent (when it was not known at `open`)."""
        socket = self.socket
        if socket is not None:
            socket.set_workflow(prompt)

    def take(self, native: NativeClient) -> TaskSocket | None:
        """The socket, handed on once, when `native` is the client it was opened with."""
        with self._lock:
            socket, self.socket = self.socket, None
        if socket is not None and native is not self.native:
            socket.close()
            return None
        return socket

    def close(self) -> None:
        with self._lock:
            socket, self.socket = self.socket, None
        close_socket(socket)

    def __enter__(self) -> "EarlySocket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



def close_socket(socket: TaskSocket | None) -> None:
    if socket is not None:
        socket.close()
