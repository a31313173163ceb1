"""RH Run Workflow: submit a workflow (or AI app) with overrides; wait with live status.

Runs go through the account's key pool (client/pool.py), so independent Run nodes and
list-mapped runs (a list of seeds, prompts or uploaded images) run side by side up to the
pool's capacity. ComfyUI calls a list-mapped async node once per list element, all at
once; each call waits in a thread of its own (`_RUNNERS`: the default executor has too few
threads for a sweep), and the calls of one node in one prompt share a `_Sweep`: one status
line per run on the node, one stop for all of them (an interrupt, or a failed sibling:
the node fails anyway, so the siblings' remote tasks are cancelled instead of billed).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from comfy_api.latest import io

from ..client.errors import RunningHubError, WaitInterrupted
from ..client.polling import PollPolicy, TaskProgress, with_budgets
from ..client.records import TaskState
from ..host import accounts, comfy
from ..remote.run import RemoteTask, run_and_wait
from .sockets import CATEGORY, RH_OVERRIDES, RH_TASK, account_input

log = logging.getLogger("runninghub_bridge.nodes")

_STAGE = {TaskState.QUEUED: 1, TaskState.RUNNING: 2, TaskState.SUCCESS: 4, TaskState.FAILED: 4, TaskState.CANCEL: 4}
_RUNNERS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rh-run")
_KEEP = 64  # sweeps and prompts remembered (the newest ones)


def describe_progress(p: TaskProgress) -> str:
    state = {"QUEUED": "queued", "RUNNING": "running", "SUCCESS": "done", "FAILED": "failed",
             "CANCEL": "cancelled"}.get(p.state.value, p.state.value.lower())
    return f"RunningHub task {p.task_id}: {state}, {p.phase_elapsed:.0f} s ({p.elapsed:.0f} s in all)"


class _Sweep:
    """The calls of one Run node in one prompt: a status line each, pool warnings, and the
    first failure (which stops the others)."""

    def __init__(self, node_id: str | None):
        self.node_id = node_id
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
            comfy.set_progress(self.node_id, done, total)

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


_sweeps: "OrderedDict[tuple, _Sweep]" = OrderedDict()
_interrupted: "OrderedDict[str, threading.Event]" = OrderedDict()
_registry_lock = threading.Lock()


def _remembered(table: OrderedDict, key, make):
    with _registry_lock:
        value = table.get(key)
        if value is None:
            value = table[key] = make()
            while len(table) > _KEEP:
                table.popitem(last=False)
        return value


def _stop_for(prompt_id: str | None, sweep: _Sweep, abandoned: threading.Event):
    """should_stop for one run: an interrupt of its prompt, a failed sibling, or ComfyUI
    abandoning the call (another node failed, so the prompt ends and cancels what is still
    pending). ComfyUI clears its interrupt flag when the first run raises it, so the prompt
    keeps its own."""
    interrupted = threading.Event() if prompt_id is None else _remembered(_interrupted, prompt_id, threading.Event)

    def should_stop() -> bool:
        if interrupted.is_set() or abandoned.is_set():
            return True
        if comfy.interrupt_requested():
            interrupted.set()
            return True
        return sweep.failed is not None

    return should_stop, interrupted


class RHRunWorkflow(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RHRunWorkflow",
            display_name="RH Run Workflow",
            category=CATEGORY,
            description=("Runs a RunningHub workflow (or AI app) in the cloud with the wired overrides and "
                         "waits for it, showing its status. Cancel in ComfyUI cancels the remote task. "
                         "Queueing the same inputs and seed again reuses the result instead of paying again."),
            inputs=[
                io.String.Input("workflow_id", default="",
                                tooltip="Id of the RunningHub workflow (the number in its URL), or of the AI app."),
                RH_OVERRIDES.Input("overrides", optional=True,
                                   tooltip="Field values to set in the remote workflow (from RH Node Override)."),
                account_input(),
                io.Combo.Input("kind", options=["workflow", "ai-app"], default="workflow",
                               tooltip="'workflow' runs a workflow id; 'ai-app' runs an AI app (webapp) id."),
                io.Combo.Input("instance_type", options=["default", "plus"], default="default",
                               tooltip="'default' is a 24 GB GPU, 'plus' a 48 GB one (if the account allows it)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Not sent anywhere: change it (or set it to randomize) to run again with "
                                     "the same inputs. To set the remote workflow's seed, use RH Node Override."),
                io.Int.Input("max_wait_minutes", default=60, min=1, max=24 * 60, optional=True,
                             tooltip="How long to wait while queued and while running before giving up "
                                     "(the remote task is then left running; re-attach with RH Fetch Outputs)."),
            ],
            outputs=[
                RH_TASK.Output("task", display_name="task", tooltip="The finished task, for RH Fetch Outputs."),
                io.String.Output("task_id", display_name="task_id",
                                 tooltip="The RunningHub task id (re-attach later with RH Fetch Outputs)."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    async def execute(cls, workflow_id: str, account: str = "default", kind: str = "workflow",
                      instance_type: str = "default", seed: int = 0, overrides: tuple | None = None,
                      max_wait_minutes: int = 60) -> io.NodeOutput:
        node_id = cls.hidden.unique_id
        prompt_id, index = comfy.executing_context()
        index = index or 0
        sweep = _Sweep(node_id) if prompt_id is None else _remembered(_sweeps, (prompt_id, node_id),
                                                                      lambda: _Sweep(node_id))
        abandoned = threading.Event()
        should_stop, interrupted = _stop_for(prompt_id, sweep, abandoned)
        acct = accounts.account_for(account)
        pool = accounts.pool_for(acct)
        budget = float(max_wait_minutes) * 60.0
        policy = with_budgets(PollPolicy(), queued=budget, running=budget)

        def on_progress(p: TaskProgress) -> None:
            sweep.show(index, describe_progress(p), _STAGE.get(p.state, 1),
                       {"task_id": p.task_id, "state": p.state.value, "elapsed": round(p.elapsed, 1),
                        "phase_elapsed": round(p.phase_elapsed, 1), "polls": p.polls})

        def on_submitted(task_id: str) -> None:
            sweep.show(index, f"RunningHub task {task_id}: submitted", 1, {"task_id": task_id, "state": "SUBMITTED"})

        def on_wait(text: str) -> None:
            sweep.show(index, text[:1].upper() + text[1:], 0, {"state": "WAITING"})

        sweep.show(index, f"Submitting {kind} {workflow_id} on {acct.site.host} ({pool.describe()})…", 0,
                   {"state": "SUBMITTING"})
        call = functools.partial(
            run_and_wait, pool, kind=kind, workflow_id=workflow_id, overrides=list(overrides or ()),
            instance_type=instance_type, poll_policy=policy, should_stop=should_stop, on_progress=on_progress,
            on_submitted=on_submitted, on_wait=on_wait, on_warning=lambda text: sweep.warn(index, text))
        try:
            task: RemoteTask = await asyncio.get_running_loop().run_in_executor(
                _RUNNERS, contextvars.copy_context().run, call)
        except asyncio.CancelledError:
            abandoned.set()  # the thread cancels the remote task (or creates none) within a tick
            log.info("RH Run Workflow %s was abandoned by ComfyUI; stopping its remote task", node_id)
            raise
        except WaitInterrupted as exc:
            if not interrupted.is_set() and sweep.failed is not None:
                message = f"{exc} Stopped because {sweep.failed}"
                sweep.show(index, message, 4, {"state": "CANCEL", "task_id": exc.task_id})
                raise RunningHubError(message, task_id=exc.task_id, site=exc.site) from exc
            log.info("%s", exc)
            sweep.show(index, str(exc), 4, {"state": "CANCEL", "task_id": exc.task_id})
            comfy.raise_interrupt()
            raise
        except Exception as exc:
            sweep.fail(index, exc)
            sweep.show(index, f"failed: {exc}"[:400], 4, {"state": "FAILED", "task_id": getattr(exc, "task_id", None)})
            raise
        cost = task.result.cost.describe() if task.result else ""
        summary = f"RunningHub task {task.task_id}: done" + (f" ({cost})" if cost else "")
        sweep.show(index, summary, 4, {"task_id": task.task_id, "state": "SUCCESS", "cost": cost,
                                       "outputs": len(task.result.outputs) if task.result else 0})
        return io.NodeOutput(task, task.task_id, ui={"text": [summary]})
