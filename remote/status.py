"""One typed status event for the nodes' live status: what a run (or a fetch) is doing.

The nodes build a `RunStatus` for each change, host/comfy.send_status sends it as the
`runninghub.status` event (`to_event`) plus ComfyUI's progress text, and the front end's
web/js/rh/status.js renders it. Every field travels as a field: the front end parses no
text (the task id included).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..client.polling import TaskProgress
from ..client.remote_progress import RemoteProgress

STATE_WORDS = {"QUEUED": "queued", "RUNNING": "running", "SUCCESS": "done", "FAILED": "failed",
               "CANCEL": "cancelled"}
FINISHED = ("SUCCESS", "FAILED", "CANCEL", "FETCHED")


@dataclass(frozen=True)
class RunStatus:
    """One run's status. `state`: SUBMITTING, WAITING, SUBMITTED, QUEUED, RUNNING, SUCCESS,
    FAILED, CANCEL, WARNING (a pool warning), FETCHING, FETCHED."""

    state: str
    line: str  # the run's status line, as shown under the node
    task_id: str | None = None
    elapsed: float | None = None  # since the wait started
    phase_elapsed: float | None = None  # in the current state
    cost: str | None = None
    remote: RemoteProgress | None = None  # what the task's websocket says
    warning: str | None = None
    outputs: int | None = None

    @classmethod
    def of_progress(cls, p: TaskProgress) -> "RunStatus":
        return cls(state=p.state.value, line=describe_progress(p), task_id=p.task_id, elapsed=round(p.elapsed, 1),
                   phase_elapsed=round(p.phase_elapsed, 1), remote=p.remote)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def fraction(self) -> float:
        """How far the run is, 0..1, for the node's progress bar: the remote node's steps
        while it reports them."""
        if self.finished:
            return 1.0
        r = self.remote
        if r is not None and r.value is not None and r.max:
            return min(1.0, r.value / r.max)
        return 0.0

    def to_event(self, index: int = 0, runs: int = 1, warnings: tuple[str, ...] = ()) -> dict[str, Any]:
        """The JSON of the `runninghub.status` event (without `node` and `text`)."""
        event: dict[str, Any] = {"state": self.state, "line": self.line, "task_id": self.task_id,
                                 "elapsed": self.elapsed, "phase_elapsed": self.phase_elapsed, "cost": self.cost,
                                 "warning": self.warning, "warnings": list(warnings), "outputs": self.outputs,
                                 "index": index, "runs": runs, "remote": None}
        r = self.remote
        if r is not None:
            event["remote"] = {"node_id": r.node_id, "node_class": r.node_class, "value": r.value, "max": r.max,
                               "nodes_done": r.nodes_done, "nodes_total": r.nodes_total}
        return event

    def with_line(self, line: str) -> "RunStatus":
        return replace(self, line=line)


def describe_progress(p: TaskProgress) -> str:
    """`RunningHub task 123: running, 4 s (5 s in all) - KSampler (#3) 12/20, nodes 2/5`."""
    state = STATE_WORDS.get(p.state.value, p.state.value.lower())
    line = f"RunningHub task {p.task_id}: {state}, {p.phase_elapsed:.0f} s ({p.elapsed:.0f} s in all)"
    remote = p.remote.describe() if p.remote is not None and not p.state.finished else ""
    if remote:
        line += f" - {remote}"
    return line + (" - RunningHub not answering, still waiting" if p.trouble else "")
