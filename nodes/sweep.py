"""Status and stop of the runs of one RH Run Workflow node in one prompt (a sweep).

ComfyUI calls a list-mapped async node once per list element, all at once. The calls of one
node in one prompt share a `Sweep`: one status line per run on the node, and one stop for
all of them (an interrupt, or a failed sibling: the node fails anyway, so the siblings'
remote tasks are cancelled instead of billed). ComfyUI clears its interrupt flag when the
first run raises it, so each prompt keeps its own interrupt event.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict

from ..client.polling import TaskProgress
from ..client.records import TaskState
from ..client.stop import shutting_down
from ..host import comfy

STAGE = {TaskState.QUEUED: 1, TaskState.RUNNING: 2, TaskState.SUCCESS: 4, TaskState.FAILED: 4, TaskState.CANCEL: 4}
_KEEP = 64  # sweeps and prompts remembered (the newest ones)


def describe_progress(p: TaskProgress) -> str:
    state = {"QUEUED": "queued", "RUNNING": "running", "SUCCESS": "done", "FAILED": "failed",
             "CANCEL": "cancelled"}.get(p.state.value, p.state.value.lower())
    line = f"RunningHub task {p.task_id}: {state}, {p.phase_elapsed:.0f} s ({p.elapsed:.0f} s in all)"
    return line + (" - RunningHub not answering, still waiting" if p.trouble else "")


class Sweep:
    """The calls of one Run node in one prompt: a status line each, pool warnings, and the
    first failure (which stops the others)."""

    def __init__(self, node_id: str | None, prompt_id: str | None = None):
        self.node_id = node_id
        self.prompt_id = prompt_id
        self._loop = asyncio.get_running_loop()  # the prompt's: progress is set there
        self._lock = threading.Lock()
        self._lines: dict[int, str] = {}
        self._stages: dict[int, int] = {}
        self._warnings: list[str] = []
        self.failed: str | None = None

    def show(self, index: int, line: str, stage: int | None = None, payload: dict | None = None) -> None:
        with self._lock:
            self._lines[index] = line
            if stage is not None:
                self._stages[index] = stage
            else:
                self._stages.setdefault(index, 0)
            text = self._text_locked()
            done, total = sum(self._stages.values()), 4 * len(self._stages)
        comfy.send_status(self.node_id, text, {**(payload or {}), "index": index, "line": line,
                                               "runs": len(self._lines)})
        if stage is not None:
            self._post(comfy.set_progress, self.node_id, done, total, self.prompt_id)

    def _post(self, call, *args) -> None:
        """Run `call` on the prompt's event loop (ComfyUI updates its progress registry
        there); dropped once the prompt is over and its loop closed."""
        try:
            self._loop.call_soon_threadsafe(call, *args)
        except RuntimeError:
            pass

    def warn(self, index: int, text: str) -> None:
        with self._lock:
            if text not in self._warnings:
                self._warnings.append(text)
        self.show(index, self._lines.get(index, "submitting"), payload={"state": "WARNING", "warning": text})

    def fail(self, index: int, exc: BaseException) -> None:
        with self._lock:
            if self.failed is None:
                self.failed = f"run #{index + 1}: {exc}"

    def _text_locked(self) -> str:
        lines = [f"⚠ {w}" for w in self._warnings]
        if len(self._lines) == 1 and not self._warnings:
            return next(iter(self._lines.values()))
        lines += [f"#{i + 1} {self._lines[i]}" for i in sorted(self._lines)]
        return "\n".join(lines)


_sweeps: "OrderedDict[tuple, Sweep]" = OrderedDict()
_interrupted: "OrderedDict[str, threading.Event]" = OrderedDict()
_registry_lock = threading.Lock()


def remembered(table: OrderedDict, key, make):
    with _registry_lock:
        value = table.get(key)
        if value is None:
            value = table[key] = make()
            while len(table) > _KEEP:
                table.popitem(last=False)
        return value


def stop_for(prompt_id: str | None, sweep: Sweep, abandoned: threading.Event):
    """should_stop for one run: an interrupt of its prompt, a failed sibling, shutdown, or
    ComfyUI abandoning the call (another node failed, so the prompt ends and cancels what is still
    pending). ComfyUI clears its interrupt flag when the first run raises it, so the prompt
    keeps its own."""
    interrupted = threading.Event() if prompt_id is None else remembered(_interrupted, prompt_id, threading.Event)

    def should_stop() -> bool:
        if interrupted.is_set() or abandoned.is_set() or shutting_down():
            return True
        if comfy.interrupt_requested():
            interrupted.set()
            return True
        return sweep.failed is not None

    return should_stop, interrupted


def sweep_for(prompt_id: str | None, node_id: str | None) -> Sweep:
    """The sweep of `node_id` in `prompt_id` (a fresh one outside a prompt). Called on the
    prompt's event loop."""
    if prompt_id is None:
        return Sweep(node_id)
    return remembered(_sweeps, (prompt_id, node_id), lambda: Sweep(node_id, prompt_id))
