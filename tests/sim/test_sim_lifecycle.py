"""Task life cycle: QUEUED -> RUNNING -> SUCCESS/FAILED, timing, per-key queue, 421, cancel."""

from __future__ import annotations

import json
import time

import pytest


def test_running_then_success_respects_run_seconds(api, sim):
    sim.configure(run_seconds=0.4)
    started = time.monotonic()
    reply = api.create("empty")
    assert reply["data"]["taskStatus"] == "RUNNING"
    task_id = reply["data"]["taskId"]
    running = api.outputs(task_id)
    assert running == {"code": 804, "msg": "APIKEY_TASK_IS_RUNNING",
                       "data": {"netWssUrl": reply["data"]["netWssUrl"]}}
    assert api.status(task_id)["data"] == "RUNNING"
    done = api.wait(task_id)
    assert time.monotonic() - started >= 0.4
    assert done["code"] == 0 and done["msg"] == "success"
    assert api.status(task_id)["data"] == "SUCCESS"
    task = sim.task(task_id)
    assert task["runSeconds"] >= 0.4


def test_second_task_queues_behind_concurrency(api, sim):
    sim.configure(concurrency=1, run_seconds=0.3)
    first = api.create("empty")["data"]
    second = api.create("empty")["data"]
    assert first["taskStatus"] == "RUNNING" and second["taskStatus"] == "QUEUED"
    assert api.outputs(second["taskId"]) == {"code": 813, "msg": "APIKEY_TASK_IS_QUEUED", "data": None}
    assert api.status(second["taskId"])["data"] == "QUEUED"
    assert api.wait(first["taskId"])["code"] == 0
    assert api.wait(second["taskId"])["code"] == 0
    one, two = (sim.task(first["taskId"]), sim.task(second["taskId"]))
    assert two["started"] >= one["finished"] - 0.01


def test_concurrency_is_per_key(api, sim):
    sim.configure(concurrency=1, run_seconds=0.5)
    api.create("empty")
    other = api.create("empty", key=sim.keys[1])
    assert other["data"]["taskStatus"] == "RUNNING"


def test_queue_depth_421_creates_nothing(api, sim):
    sim.configure(concurrency=1, queue_depth=1, run_seconds=5)
    assert api.create("empty")["data"]["taskStatus"] == "RUNNING"
    assert api.create("empty")["data"]["taskStatus"] == "QUEUED"
    refused = api.create("empty")
    assert refused == {"code": 421, "msg": "TASK_QUEUE_MAXED", "data": None}
    assert len(sim.tasks()) == 2
    assert api.create("empty", key=sim.keys[1])["code"] == 0


def test_queue_depth_zero_refuses_once_slots_are_busy(api, sim):
    sim.configure(concurrency=2, queue_depth=0, run_seconds=5)
    assert api.create("empty")["code"] == 0
    assert api.create("empty")["code"] == 0
    assert api.create("empty")["code"] == 421


def test_queue_seconds_keeps_tasks_queued(api, sim):
    sim.configure(queue_seconds=0.3)
    task_id = api.create("empty")["data"]["taskId"]
    assert api.status(task_id)["data"] == "QUEUED"
    assert api.wait(task_id)["code"] == 0
    assert sim.task(task_id)["queuedSeconds"] >= 0.3


def _check_failed_reason(reason: dict) -> None:
    assert set(reason) == {"node_id", "node_name", "exception_type", "exception_message", "traceback",
                           "current_inputs", "current_outputs"}
    assert isinstance(json.loads(reason["traceback"]), list)
    assert isinstance(reason["current_inputs"], str) and isinstance(reason["current_outputs"], str)


def test_cancel_queued_task(api, sim):
    sim.configure(concurrency=1, run_seconds=0.4)
    first = api.task_id("empty")
    second = api.task_id("empty")
    assert api.call("cancel", {"apiKey": api.key, "taskId": second}) == {"code": 0, "msg": "success", "data": None}
    reply = api.outputs(second)
    assert reply["code"] == 805 and reply["msg"] == "APIKEY_TASK_STATUS_ERROR"
    _check_failed_reason(reply["data"]["failedReason"])
    assert api.status(second)["data"] == "FAILED"
    assert api.wait(first)["code"] == 0
    assert sim.task(second)["started"] is None


def test_cancel_running_task_frees_the_slot(api, sim):
    sim.configure(concurrency=1, run_seconds=3)
    first = api.task_id("empty")
    second = api.task_id("empty")
    assert api.status(first)["data"] == "RUNNING"
    assert api.call("cancel", {"apiKey": api.key, "taskId": first})["code"] == 0
    assert api.status(first)["data"] == "FAILED"
    assert api.outputs(first)["code"] == 805
    sim.wait_for(lambda: api.status(second)["data"] == "RUNNING", timeout=2)
    before = int(api.call("accountStatus", {"apikey": api.key})["data"]["remainCoins"])
    assert sim.task(first)["consumeCoins"] == 0
    assert before == 100_000


def test_cancel_of_a_finished_task_changes_nothing(api):
    task_id = api.task_id("empty")
    api.wait(task_id)
    assert api.call("cancel", {"apiKey": api.key, "taskId": task_id})["code"] == 0
    assert api.status(task_id)["data"] == "SUCCESS"


def test_node_failure_805_failed_reason(api, sim):
    task_id = api.task_id("fail")
    reply = api.wait(task_id)
    assert reply["code"] == 805 and reply["msg"] == "APIKEY_TASK_STATUS_ERROR"
    reason = reply["data"]["failedReason"]
    _check_failed_reason(reason)
    assert reason["node_id"] == "2" and reason["node_name"] == "SimFail"
    assert reason["exception_type"] == "RuntimeError"
    assert reason["exception_message"] == "CUDA out of memory (simulated)"
    assert any("sim_fail" in line for line in json.loads(reason["traceback"]))
    assert "image" in reason["current_inputs"]
    assert api.status(task_id)["data"] == "FAILED"
    assert api.call("accountStatus", {"apikey": api.key})["data"]["remainCoins"] == "100000"


@pytest.mark.parametrize("exception_type", ["ValueError", "FileNotFoundError"])
def test_failure_exception_type_is_reported(api, exception_type):
    reply = api.wait(api.task_id("fail", [("2", "exception_type", exception_type), ("2", "message", "boom")]))
    assert reply["data"]["failedReason"]["exception_type"] == exception_type
    assert reply["data"]["failedReason"]["exception_message"] == "boom"


def test_success_with_nothing_saved_is_an_empty_list(api):
    reply = api.run("preview_only")
    assert reply == {"code": 0, "msg": "success", "data": []}


def test_cost_fields_are_task_level_strings(api, sim):
    sim.configure(run_seconds=0.2, coins_per_task=23)
    items = api.run("mixed")["data"]
    assert len(items) == 6
    for item in items:
        assert set(item) == {"fileUrl", "fileType", "nodeId", "taskCostTime", "consumeCoins", "consumeMoney",
                             "thirdPartyConsumeMoney"}
        assert item["consumeCoins"] == "23" and item["taskCostTime"] == items[0]["taskCostTime"]
        assert item["taskCostTime"].isdigit() and int(item["taskCostTime"]) >= 1
        assert item["consumeMoney"] is None and item["thirdPartyConsumeMoney"] is None
    assert api.call("accountStatus", {"apikey": api.key})["data"]["remainCoins"] == str(100_000 - 23)


def test_runtime_config_changes_apply_to_new_tasks(api, sim):
    sim.configure(run_seconds=5)
    slow = api.task_id("empty")
    sim.configure(run_seconds=0)
    quick = api.task_id("empty")
    assert api.wait(quick, timeout=2)["code"] == 0
    assert api.status(slow)["data"] == "RUNNING"


def test_running_reply_carries_net_wss_url(api, sim):
    sim.configure(run_seconds=2)
    task_id = api.task_id("empty")
    reply = api.outputs(task_id)
    assert reply["code"] == 804 and reply["data"]["netWssUrl"].startswith("ws://")


def test_bad_linked_value_fails_the_consuming_node(api):
    graph = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": -5}, "_meta": {"title": "Width"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": ["1", 0], "height": 8, "batch_size": 1, "color": 0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    reply = api.wait(api.task_id("empty", workflow=json.dumps(graph)))
    assert reply["code"] == 805
    reason = reply["data"]["failedReason"]
    assert reason["node_id"] == "2" and reason["exception_type"] == "ValueError" and "width" in reason["exception_message"]
    assert json.loads(reason["current_outputs"]) == ["1"]


def test_link_type_mismatch_is_433(api):
    graph = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "a"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    reply = api.create("empty", workflow=json.dumps(graph))
    assert reply["code"] == 433
    tips = json.loads(reply["data"]["promptTips"])
    assert tips["node_errors"]["2"]["errors"][0]["type"] == "return_type_mismatch"
