"""`CREATE`: a task that exists but is not queued yet, for `create_seconds` after create."""

from __future__ import annotations

import time

import requests

from support.simulator import WORKFLOWS


def _v2_status(sim, task_id: str) -> str:
    reply = requests.post(sim.base_url + "/openapi/v2/query", json={"taskId": task_id}, timeout=5,
                          headers={"Authorization": f"Bearer {sim.keys[0]}"}).json()
    return reply["status"]


def test_a_new_task_is_create_for_create_seconds(api, sim):
    sim.configure(create_seconds=2.0)
    started = time.monotonic()
    reply = api.create("empty")
    assert reply["code"] == 0 and reply["data"]["taskStatus"] == "CREATE"
    assert reply["data"]["netWssUrl"] is None
    task_id = reply["data"]["taskId"]
    assert api.status(task_id)["data"] == "CREATE"
    assert api.outputs(task_id)["code"] == 813
    assert _v2_status(sim, task_id) == "CREATE"
    assert api.call("accountStatus", {"apikey": api.key})["data"]["currentTaskCounts"] == "1"
    done = api.wait(task_id, timeout=15)
    assert done["code"] == 0 and time.monotonic() - started >= 2.0
    (task,) = sim.tasks()
    assert task["queuedSeconds"] >= 2.0 - 0.05


def test_v2_run_reports_create_too(sim):
    sim.configure(create_seconds=5)
    reply = requests.post(sim.base_url + f"/openapi/v2/run/workflow/{WORKFLOWS['empty']}", json={}, timeout=5,
                          headers={"Authorization": f"Bearer {sim.keys[0]}"}).json()
    assert reply["status"] == "CREATE"


def test_a_create_task_can_be_cancelled_and_costs_nothing(api, sim):
    sim.configure(create_seconds=5)
    task_id = api.task_id("empty")
    assert api.call("cancel", {"apiKey": api.key, "taskId": task_id})["code"] == 0
    assert api.status(task_id)["data"] == "FAILED"
    assert api.outputs(task_id)["code"] == 805
    assert api.call("accountStatus", {"apikey": api.key})["data"]["remainCoins"] == "100000"


def test_by_default_no_task_is_ever_create(api, sim):
    sim.configure(queue_seconds=5)
    reply = api.create("empty")
    assert reply["data"]["taskStatus"] == "QUEUED"
    assert api.status(reply["data"]["taskId"])["data"] == "QUEUED"
