"""The interface between the task scheduler and whatever executes a graph."""

from __future__ import annotations

import json
import re
import threading
import traceback as tb_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class OutputFile:
    """One file a save node produced (one item of the outputs reply)."""

    node_id: str
    path: Path
    name: str
    text: str | None = None  # the content of a text output (v2 returns it inline)

    @property
    def file_type(self) -> str:
        return self.name.rsplit(".", 1)[-1].lower() if "." in self.name else ""


class PromptInvalid(Exception):
    """Validation failed before the task was created: becomes 433 with these promptTips."""

    def __init__(self, prompt_tips: dict):
        super().__init__(prompt_tips.get("error", {}).get("message", "validation failed"))
        self.prompt_tips = prompt_tips


class NodeFailure(Exception):
    """Execution failed in one node: becomes 805 with `failed_reason`."""

    def __init__(self, failed_reason: dict):
        super().__init__(failed_reason.get("exception_message", "execution failed"))
        self.failed_reason = failed_reason


class Cancelled(Exception):
    """The task was cancelled while running."""


@dataclass
class RunContext:
    task_id: str
    graph: dict
    storage: Any
    add_metadata: bool = True
    cancel_event: threading.Event = field(default_factory=threading.Event)
    state: Any = None  # whatever submit() returned; holds the ComfyUI `prompt_id`
    feed: Any = None  # progress.TaskFeed: the task's websocket messages
    executed: list[str] = field(default_factory=list)  # node ids in the order they ran

    @property
    def prompt_id(self) -> str:
        return (self.state or {}).get("prompt_id", "")

    def check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()


class Executor:
    name = "base"

    def submit(self, graph: dict, task_id: str, client_id: str, storage=None) -> tuple[dict, Any]:
        """Validates (and, for a remote engine, enqueues) the graph, finding input files in
        `storage` (the creating account's view of it; default: the executor's own).
        Returns (promptTips, state) or raises PromptInvalid."""
        raise NotImplementedError

    def run(self, ctx: RunContext) -> list[OutputFile]:
        """Executes; returns the saved files. Raises NodeFailure or Cancelled."""
        raise NotImplementedError

    def play(self, ctx: RunContext, files: list[OutputFile], failed_node: str | None, seconds: float,
             steps: int) -> None:
        """Fills the task's minimum running time (`seconds`) once run() returned, sending
        whatever progress the executor has not sent live. Returns early on cancel."""
        ctx.cancel_event.wait(max(0.0, seconds))

    def cancel(self, ctx: RunContext) -> None:
        ctx.cancel_event.set()

    def close(self) -> None:
        pass


def failed_reason(
    node_id: str, node_name: str, exc_type: str, message: str,
    traceback: list[str] | None = None, current_inputs: Any = None, current_outputs: Any = None,
) -> dict:
    """RunningHub's failedReason: traceback is a JSON list in a string, inputs and
    outputs are strings."""
    return {
        "node_id": str(node_id),
        "node_name": node_name,
        "exception_type": exc_type,
        "exception_message": message,
        "traceback": json.dumps(list(traceback or []), ensure_ascii=False),
        "current_inputs": current_inputs if isinstance(current_inputs, str) else json.dumps(current_inputs or {}, ensure_ascii=False, default=str),
        # the ids of the nodes that had run (a JSON list, as the real replies and the README say)
        "current_outputs": current_outputs if isinstance(current_outputs, str) else json.dumps(list(current_outputs or []), ensure_ascii=False, default=str),
    }


def exception_type_name(exc: BaseException) -> str:
    """Like ComfyUI's full_type_name: module-qualified except for builtins."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in (None, "builtins") else f"{module}.{cls.__qualname__}"


def format_traceback(exc: BaseException) -> list[str]:
    """The traceback's lines, each file named as in a ComfyUI install (not the simulator's
    own paths on the tester's machine)."""
    return [re.sub(r'File "[^"]*[\\/]([^"\\/]+)"', r'File "/ComfyUI/\1"', line)
            for line in tb_module.format_tb(exc.__traceback__)]


def cancelled_reason(node_id: str = "", node_name: str = "") -> dict:
    return failed_reason(
        node_id, node_name, "comfy.model_management.InterruptProcessingException",
        "Task cancelled through the API", [], {}, [],
    )
