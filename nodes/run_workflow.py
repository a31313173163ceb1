"""RH Run Workflow: submit a workflow (or AI app) with overrides; wait with live status."""

from __future__ import annotations

import asyncio
import logging

from comfy_api.latest import io

from ..client.errors import WaitInterrupted
from ..client.polling import PollPolicy, TaskProgress, with_budgets
from ..client.records import TaskState
from ..host import accounts, comfy
from ..remote.run import RemoteTask, run_and_wait
from .sockets import CATEGORY, RH_OVERRIDES, RH_TASK, account_input

log = logging.getLogger("runninghub_bridge.nodes")

_STAGE = {TaskState.QUEUED: 1, TaskState.RUNNING: 2, TaskState.SUCCESS: 4, TaskState.FAILED: 4, TaskState.CANCEL: 4}


def describe_progress(p: TaskProgress) -> str:
    state = {"QUEUED": "queued", "RUNNING": "running", "SUCCESS": "done", "FAILED": "failed",
             "CANCEL": "cancelled"}.get(p.state.value, p.state.value.lower())
    return f"RunningHub task {p.task_id}: {state}, {p.phase_elapsed:.0f} s ({p.elapsed:.0f} s in all)"


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
        acct = accounts.account_for(account)
        client = accounts.client_for(acct)
        budget = float(max_wait_minutes) * 60.0
        policy = with_budgets(PollPolicy(), queued=budget, running=budget)

        def on_progress(p: TaskProgress) -> None:
            comfy.send_status(node_id, describe_progress(p),
                              {"task_id": p.task_id, "state": p.state.value, "elapsed": round(p.elapsed, 1),
                               "phase_elapsed": round(p.phase_elapsed, 1), "polls": p.polls})
            comfy.set_progress(node_id, _STAGE.get(p.state, 1), 4)

        def on_submitted(task_id: str) -> None:
            comfy.send_status(node_id, f"RunningHub task {task_id}: submitted", {"task_id": task_id,
                                                                                   "state": "SUBMITTED"})

        comfy.send_status(node_id, f"Submitting {kind} {workflow_id} on {acct.site.host}…", {"state": "SUBMITTING"})
        try:
            task: RemoteTask = await asyncio.to_thread(
                run_and_wait, client, kind=kind, workflow_id=workflow_id, overrides=list(overrides or ()),
                instance_type=instance_type, poll_policy=policy, should_stop=comfy.interrupt_requested,
                on_progress=on_progress, on_submitted=on_submitted)
        except WaitInterrupted as exc:
            log.info("%s", exc)
            comfy.send_status(node_id, str(exc), {"state": "CANCEL", "task_id": exc.task_id})
            comfy.raise_interrupt()
            raise
        cost = task.result.cost.describe() if task.result else ""
        summary = f"RunningHub task {task.task_id}: done" + (f" ({cost})" if cost else "")
        comfy.send_status(node_id, summary, {"task_id": task.task_id, "state": "SUCCESS", "cost": cost,
                                             "outputs": len(task.result.outputs) if task.result else 0})
        return io.NodeOutput(task, task.task_id, ui={"text": [summary]})

