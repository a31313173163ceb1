"""Every v1 endpoint: success and error shapes, as the protocol page states them."""

from __future__ import annotations

import json
import re

import requests
from raw_api import prompt_tips

from support.simulator import WORKFLOWS, Simulator


def test_create_success_shape(api):
    reply = api.create("invert")
    assert reply["code"] == 0 and reply["msg"] == "success"
    data = reply["data"]
    assert set(data) == {"taskId", "clientId", "taskStatus", "promptTips", "netWssUrl"}
    assert isinstance(data["taskId"], str) and re.fullmatch(r"[1-9]\d{18}", data["taskId"])
    assert re.fullmatch(r"[0-9a-f]{32}", data["clientId"])
    assert data["taskStatus"] in ("QUEUED", "RUNNING")
    expected_wss = f"{api.base.replace('http', 'ws', 1)}/ws?clientId={data['clientId']}"
    assert data["netWssUrl"] == (expected_wss if data["taskStatus"] == "RUNNING" else None)
    assert prompt_tips(reply) == {"result": True, "error": None, "outputs_to_execute": ["3"], "node_errors": {}}
    assert "errorMessages" not in reply


def test_task_ids_are_unique(api):
    ids = {api.task_id("preview_only") for _ in range(5)}
    assert len(ids) == 5


def test_create_with_bearer_only(api):
    reply = api.call("create", {"workflowId": WORKFLOWS["empty"]},
                     headers={"Authorization": f"Bearer {api.key}"})
    assert reply["code"] == 0


def test_create_missing_params_301(api):
    assert api.call("create", {"apiKey": api.key})["code"] == 301
    assert api.call("create", {"workflowId": WORKFLOWS["empty"]})["code"] == 301
    bad_list = api.call("create", {"apiKey": api.key, "workflowId": WORKFLOWS["empty"], "nodeInfoList": {"a": 1}})
    assert bad_list["code"] == 301
    missing_value = api.call("create", {"apiKey": api.key, "workflowId": WORKFLOWS["empty"],
                                        "nodeInfoList": [{"nodeId": "1", "fieldName": "width"}]})
    assert missing_value["code"] == 301
    not_json = api.raw("create", None, data=b"{not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 200 and not_json.json()["code"] == 301


def test_unknown_key_802(api):
    reply = api.create("empty", key="f" * 32)
    assert reply == {"code": 802, "msg": "APIKEY_UNAUTHORIZED", "data": None}


def test_disabled_key_802_and_free_user_801(api, sim):
    sim.configure(keys={sim.keys[1]: {"disabled": True}})
    assert api.create("empty", key=sim.keys[1])["code"] == 802
    sim.configure(keys={sim.keys[1]: {"disabled": False, "free_user": True}})
    assert api.create("empty", key=sim.keys[1])["code"] == 801


def test_unknown_workflow_380(api):
    reply = api.create("1999999999999999999")
    assert reply["code"] == 380 and reply["msg"] == "WORKFLOW_NOT_EXISTS" and reply["data"] is None


def test_wrong_path_412(api):
    reply = api.call("/task/openapi/creat", {"apiKey": api.key})
    assert reply["code"] == 412 and reply["msg"] == "TOKEN_INVALID"


def test_unknown_path_outside_api_is_http_404(api):
    reply = api.raw("/nothing/here", {})
    assert reply.status_code == 404


def test_get_on_post_endpoint_is_405(api):
    assert requests.get(api.base + "/task/openapi/create", timeout=5).status_code == 405


def test_803_names_nothing_in_its_reply_and_every_bad_entry_in_the_log(api):
    reply = api.create("invert", [("1", "image", "example.png"), ("99", "image", "x"), ("2", "strength", 3)])
    assert reply["code"] == 803
    assert reply["msg"] == "APIKEY_INVALID_NODE_INFO"  # the bare constant, as the service sends it
    logged = api.sim.log_text().rsplit("803 APIKEY_INVALID_NODE_INFO: ", 1)[-1].splitlines()[0]
    assert "'99'" in logged and "'strength'" in logged and "ImageInvert" in logged and "'1'" not in logged
    assert api.sim.tasks() == []


def test_overrides_are_applied_with_their_types(api, sim):
    task_id = api.task_id("empty", [("1", "width", 32), ("1", "color", 255), ("2", "filename_prefix", "mine")])
    task = sim.task(task_id)
    assert task["graph"]["1"]["inputs"]["width"] == 32
    assert task["graph"]["2"]["inputs"]["filename_prefix"] == "mine"
    assert task["overrides"][0] == {"nodeId": "1", "fieldName": "width", "fieldValue": 32}
    reply = api.wait(task_id)
    assert [item["fileUrl"].rsplit("/", 1)[-1].startswith("mine_") for item in reply["data"]] == [True, True]


def test_int_node_id_in_node_info_list_is_accepted(api):
    reply = api.call("create", {"apiKey": api.key, "workflowId": WORKFLOWS["empty"],
                                "nodeInfoList": [{"nodeId": 1, "fieldName": "width", "fieldValue": 8}]})
    assert reply["code"] == 0


def test_433_unsupported_class_type(api, sim):
    reply = api.create("unsupported")
    assert reply["code"] == 433 and reply["msg"] == "VALIDATE_PROMPT_FAILED"
    tips = prompt_tips(reply)
    assert tips["result"] is False
    assert tips["error"]["type"] == "missing_node_type"
    entry = tips["node_errors"]["4"]
    assert entry["class_type"] == "CheckpointLoaderSimple"
    assert {"type", "message", "details", "extra_info"} <= set(entry["errors"][0])
    assert sim.tasks() == []


def test_433_bad_input_value(api):
    reply = api.create("empty", [("1", "width", "wide")])
    assert reply["code"] == 433
    tips = prompt_tips(reply)
    assert tips["error"]["type"] == "prompt_outputs_failed_validation"
    entry = tips["node_errors"]["1"]
    assert entry["class_type"] == "EmptyImage" and entry["dependent_outputs"] == ["2"]
    assert entry["errors"][0]["type"] == "invalid_input_type"
    assert entry["errors"][0]["extra_info"]["input_name"] == "width"


def test_433_value_out_of_range_and_not_in_list(api):
    tips = prompt_tips(api.create("empty", [("1", "width", 0)]))
    assert tips["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"
    tips = prompt_tips(api.create("scale", [("2", "upscale_method", "magic")]))
    assert tips["node_errors"]["2"]["errors"][0]["type"] == "value_not_in_list"


def test_433_missing_input_file(api):
    tips = prompt_tips(api.create("invert", [("1", "image", "api/" + "0" * 64 + ".png")]))
    error = tips["node_errors"]["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "Invalid image file" in error["details"]


def test_status_is_a_bare_string(api):
    task_id = api.task_id("empty")
    api.wait(task_id)
    reply = api.status(task_id)
    assert reply == {"code": 0, "msg": "success", "data": "SUCCESS"}


def test_task_id_as_int_is_accepted(api):
    task_id = api.task_id("empty")
    api.wait(task_id)
    assert api.call("status", {"apiKey": api.key, "taskId": int(task_id)})["data"] == "SUCCESS"
    assert api.call("outputs", {"apiKey": api.key, "taskId": int(task_id)})["code"] == 0


def test_unknown_task_807_everywhere(api):
    for endpoint in ("outputs", "status", "cancel", "getWebhookDetail"):
        reply = api.call(endpoint, {"apiKey": api.key, "taskId": "1234567890123456789"})
        assert reply == {"code": 807, "msg": "APIKEY_TASK_NOT_FOUND", "data": None}, endpoint
    assert api.call("status", {"apiKey": api.key})["code"] == 301


def test_tasks_are_private_to_their_key(api, sim):
    task_id = api.task_id("empty")
    assert api.status(task_id, key=sim.keys[1])["code"] == 807


def test_account_status_shape_and_billing(api, sim):
    reply = api.call("accountStatus", {"apikey": api.key})
    assert reply["code"] == 0
    data = reply["data"]
    assert set(data) == {"remainCoins", "currentTaskCounts", "remainMoney", "currency", "apiType"}
    assert data["currency"] == "CNY" and data["apiType"] == "NORMAL"
    assert isinstance(data["remainCoins"], str) and isinstance(data["currentTaskCounts"], str)
    before = int(data["remainCoins"])
    result = api.run("empty")
    cost = int(result["data"][0]["consumeCoins"])
    assert cost > 0
    after = api.call("accountStatus", {"apikey": api.key})["data"]
    assert int(after["remainCoins"]) == before - cost
    assert after["currentTaskCounts"] == "0"


def test_account_status_wants_lower_case_apikey(api):
    assert api.call("accountStatus", {"apiKey": api.key})["code"] == 301
    assert api.call("accountStatus", {"apiKey": api.key},
                    headers={"Authorization": f"Bearer {api.key}"})["code"] == 0
    assert api.call("accountStatus", {"apikey": "0" * 32})["code"] == 802


def test_current_task_counts_counts_open_tasks(api, sim):
    sim.configure(run_seconds=5)
    api.task_id("empty")
    api.task_id("empty")
    api.task_id("empty")
    assert api.call("accountStatus", {"apikey": api.key})["data"]["currentTaskCounts"] == "3"


def test_not_enough_coins_416(api, sim):
    sim.configure(keys={api.key: {"coins": 5}})
    reply = api.create("empty")
    assert reply["code"] == 416 and reply["msg"] == "TASK_CREATE_FAILED_BY_NOT_ENOUGH_WALLET"
    assert sim.tasks() == []


def test_get_json_api_format(api):
    reply = api.call("getJsonApiFormat", {"apiKey": api.key, "workflowId": WORKFLOWS["invert"]})
    assert reply["code"] == 0
    prompt = json.loads(reply["data"]["prompt"])
    assert prompt["2"] == {"inputs": {"image": ["1", 0]}, "class_type": "ImageInvert",
                           "_meta": {"title": "Invert Image"}}
    assert api.call("getJsonApiFormat", {"apiKey": api.key, "workflowId": "1999999999999999999"})["code"] == 380
    assert api.call("getJsonApiFormat", {"apiKey": api.key})["code"] == 301
    assert api.call("getJsonApiFormat", {"apiKey": "0" * 32, "workflowId": WORKFLOWS["invert"]})["code"] == 802


def test_ai_app_run(api, sim):
    body = {"apiKey": api.key, "webappId": int(WORKFLOWS["empty"]),
            "nodeInfoList": [{"nodeId": "1", "fieldName": "width", "fieldValue": 16, "description": "width"}]}
    reply = api.call("ai-app/run", body)
    assert reply["code"] == 0 and re.fullmatch(r"\d{19}", reply["data"]["taskId"])
    assert sim.task(reply["data"]["taskId"])["kind"] == "ai-app"
    body["webappId"] = WORKFLOWS["empty"]
    assert api.call("ai-app/run", body)["code"] == 0
    assert api.call("ai-app/run", {**body, "webappId": "1999999999999999999"})["code"] == 901
    bad = api.call("ai-app/run", {**body, "nodeInfoList": [{"nodeId": "7", "fieldName": "x", "fieldValue": 1}]})
    assert bad["code"] == 803


def test_use_personal_queue_and_instance_type_forms(api):
    for value in (True, False, "false", "true"):
        assert api.create("preview_only", usePersonalQueue=value)["code"] == 0
    assert api.create("preview_only", usePersonalQueue="maybe")["code"] == 301
    assert api.create("preview_only", instanceType="plus")["code"] == 0
    assert api.create("preview_only", instanceType="huge")["code"] == 301


def test_workflow_parameter_replaces_the_graph(api, sim):
    graph = json.loads(api.call("getJsonApiFormat", {"apiKey": api.key, "workflowId": WORKFLOWS["empty"]})
                       ["data"]["prompt"])
    graph["1"]["inputs"]["width"] = 20
    task_id = api.task_id("empty", workflow=json.dumps(graph))
    assert sim.task(task_id)["graph"]["1"]["inputs"]["width"] == 20
    assert api.create("empty", workflow="{oops")["code"] == 301


def test_site_ai_reports_usd():
    with Simulator(site="ai") as sim:
        reply = requests.post(sim.base_url + "/uc/openapi/accountStatus", json={"apikey": sim.keys[0]}, timeout=5)
        assert reply.json()["data"]["currency"] == "USD"


def test_foreign_key_806(sim):
    with Simulator(extra_args=["--foreign-key", "a" * 32]) as other:
        reply = requests.post(other.base_url + "/task/openapi/create",
                              json={"apiKey": "a" * 32, "workflowId": WORKFLOWS["empty"]}, timeout=5).json()
        assert reply["code"] == 806
