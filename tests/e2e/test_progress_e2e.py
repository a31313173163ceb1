"""Remote progress in a real ComfyUI: RH Run Workflow follows the task's websocket and
shows the remote node and its steps on the node; a dropped or silent socket still ends
correctly by polling."""

from __future__ import annotations

import pytest

from support.graphs import run_fetch
from support.simulator import WORKFLOWS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(sim, comfy_host_factory):
    return comfy_host_factory(env=sim.pack_env())


@pytest.fixture(autouse=True)
def _fresh_each_test(fresh):
    """Every test starts from the simulator's start state on an idle ComfyUI."""


def run_statuses(result, node="13") -> list[dict]:
    return [e.data for e in result.events_of("runninghub.status") if e.data["node"] == node]


def test_a_six_second_task_shows_its_remote_progress_on_the_node(host, sim):
    sim.configure(run_seconds=6, progress_steps=12)
    result = host.run(run_fetch(WORKFLOWS["empty"]), timeout=120)
    assert result.status == "success", result.error
    bar = [(e.data["value"], e.data["max"]) for e in result.events_of("progress") if e.data.get("node") == "13"]
    values = [value for value, most in bar if value < most]
    assert len(set(values)) >= 3 and values == sorted(values), bar  # a real bar, moving forward
    remote = [s["remote"] for s in run_statuses(result) if s.get("remote") and s["remote"]["value"] is not None]
    steps = [r["value"] for r in remote]
    assert len(set(steps)) >= 3 and steps == sorted(steps)
    assert {r["node_class"] for r in remote} == {"EmptyImage"} and {r["max"] for r in remote} == {12}
    assert any("EmptyImage (#1)" in text for text in result.progress_texts("13"))
    final = run_statuses(result)[-1]
    [task] = sim.tasks()
    assert final["state"] == "SUCCESS" and final["task_id"] == task["taskId"]
    assert sim.count("ws") == 1
    assert sim.count("outputs") <= 6  # heartbeat polling while the socket spoke


@pytest.mark.parametrize("mode", ["drop", "silent"])
def test_a_dropped_or_silent_socket_still_ends_by_polling(host, sim, mode):
    sim.configure(run_seconds=4, websocket=mode, websocket_drop_after=4)
    result = host.run(run_fetch(WORKFLOWS["empty"]), timeout=120)
    assert result.status == "success", result.error
    [task] = sim.tasks()
    assert task["status"] == "SUCCESS" and run_statuses(result)[-1]["state"] == "SUCCESS"
    assert len(result.images("15")) == 2  # the outputs came through
    assert sim.count("ws") >= 1
