"""RH Run Workflow: submit a workflow (or AI app) with overrides; wait with live status.

Runs go through the account's key pool (client/pool.py), so independent Run nodes and
list-mapped runs (a list of seeds, prompts or uploaded images) run side by side up to the
pool's capacity. ComfyUI calls a list-mapped async node once per list element, all at
once; each call waits in a thread of its own (`NodeStop.run`, in `sweep.RUNNERS`: the default executor has too few
threads for a sweep), and the calls of one node in one prompt share a `Sweep` (nodes/sweep.py):
one status line per run on the node, one stop for all of them.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..client.polling import PollPolicy, TaskProgress, with_budgets
from ..host import accounts, comfy, tasks
from ..remote.run import RemoteTask, run_and_wait
from .sockets import CATEGORY, RH_OVERRIDES, RH_TASK, account_input
from ..remote.status import RunStatus
from .sweep import NodeStop, sweep_for


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
                             tooltip="Not sent anywhere: the same inputs and seed re-attach to the earlier task "
                                     "(even after a restart); change it (or set it to randomize) to run again. "
                                     "To set the remote workflow's seed, use RH Node Override."),
                io.Int.Input("max_wait_minutes", default=60, min=1, max=24 * 60, optional=True,
                             tooltip="How long to wait while queued and while running before giving up "
                                     "(the remote task is then left running; queue again to re-attach to it)."),
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
        sweep = sweep_for(prompt_id, node_id)
        stop = NodeStop(prompt_id, sweep, index)
        should_stop = stop.should_stop
        acct = accounts.account_for(account)
        pool = accounts.pool_for(acct)
        budget = float(max_wait_minutes) * 60.0
        policy = with_budgets(PollPolicy(), queued=budget, running=budget)

        def on_progress(p: TaskProgress) -> None:
            sweep.show(index, RunStatus.of_progress(p))

        def on_submitted(task_id: str) -> None:
            sweep.show(index, RunStatus("SUBMITTED", f"RunningHub task {task_id}: submitted", task_id=task_id))

        def on_reattach(task_id: str) -> None:
            sweep.show(index, RunStatus("REATTACHED", f"RunningHub task {task_id}: re-attached (same inputs and seed "
                                                      "as an earlier run; change the seed to run again)",
                                        task_id=task_id))

        def on_wait(text: str) -> None:
            sweep.show(index, RunStatus("WAITING", text[:1].upper() + text[1:]))

        sweep.show(index, RunStatus("SUBMITTING", f"Submitting {kind} {workflow_id} on {acct.site.host} "
                                                  f"({pool.describe()})…"))
        task: RemoteTask = await stop.run_in_sweep(
            f"RH Run Workflow {node_id}", run_and_wait, pool, kind=kind, workflow_id=workflow_id,
            overrides=list(overrides or ()), instance_type=instance_type, poll_policy=policy,
            should_stop=should_stop, on_progress=on_progress, on_submitted=on_submitted, on_wait=on_wait,
            on_warning=lambda text: sweep.warn(index, text),
            journal=tasks.journal(acct, seed, prompt_id, node_id, index), on_reattach=on_reattach)
        cost = task.result.cost.describe() if task.result else ""
        summary = f"RunningHub task {task.task_id}: done" + (f" ({cost})" if cost else "")
        done = RunStatus("SUCCESS", summary, task_id=task.task_id, cost=cost or None,
                         outputs=len(task.result.outputs) if task.result else 0)
        sweep.show(index, done)
        return io.NodeOutput(task, task.task_id, ui={"text": [summary], "rh_status": [done.to_event()]})
