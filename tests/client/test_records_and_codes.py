"""Parsing of every reply shape the protocol page lists, and the error taxonomy's messages."""

import json

import pytest

from support.pack import pack_module

records = pack_module("client.records")
codes = pack_module("client.codes")
errors = pack_module("client.errors")
sites = pack_module("client.sites")

KEY = "0123456789abcdef0123456789abcdef"


def test_ids_and_counts_accept_strings_and_numbers():
    assert records.as_id(1234567890123456789) == "1234567890123456789"
    assert records.as_id("1234567890123456789") == "1234567890123456789"
    assert records.as_int("17") == 17 and records.as_int(17) == 17 and records.as_int(None) is None
    assert records.as_float("0.5") == 0.5 and records.as_float("junk") is None


def test_task_handle_decodes_prompt_tips_inside_a_string():
    tips = {"result": True, "error": None, "outputs_to_execute": ["9", 12], "node_errors": {}}
    handle = records.TaskHandle.parse({"taskId": 1987654321098765432, "clientId": "abc", "taskStatus": "RUNNING",
                                       "promptTips": json.dumps(tips), "netWssUrl": None})
    assert handle.task_id == "1987654321098765432"
    assert handle.state is records.TaskState.RUNNING
    assert handle.prompt_tips.ok and handle.prompt_tips.outputs_to_execute == ["9", "12"]


def test_prompt_tips_with_node_errors_are_not_ok():
    tips = records.PromptTips.parse(json.dumps({"result": False, "node_errors": {"3": {"errors": []}}}))
    assert not tips.ok and "3" in tips.node_errors


def test_failure_reason_reads_traceback_json_string_and_keeps_the_tail():
    tb = json.dumps([f"  File \"x.py\", line {i}\n" for i in range(20)] + ["ValueError: boom\n"])
    reason = records.parse_failure_reason({"failedReason": {
        "node_id": 7, "node_name": "KSampler", "exception_type": "ValueError",
        "exception_message": "boom ", "traceback": tb, "current_inputs": "{}", "current_outputs": "{}"}})
    assert reason.node_id == "7" and reason.node_name == "KSampler"
    assert reason.exception_message == "boom"
    assert reason.traceback_tail[-1] == "ValueError: boom" and len(reason.traceback_tail) == 6
    assert reason.describe() == "remote node 7 (KSampler): ValueError: boom"


def test_failure_reason_without_structure_falls_back_to_msg():
    reason = records.parse_failure_reason(None, "APIKEY_TASK_STATUS_ERROR")
    assert reason.describe() == "APIKEY_TASK_STATUS_ERROR"


def test_account_status_numbers_as_strings_or_numbers():
    new = records.AccountStatus.parse({"remainCoins": "105100", "currentTaskCounts": "1", "remainMoney": None,
                                       "currency": "CNY", "apiType": "NORMAL"})
    old = records.AccountStatus.parse({"remainCoins": 105100, "currentTaskCounts": 1})
    assert new.remain_coins == old.remain_coins == 105100
    assert new.current_task_counts == old.current_task_counts == 1
    assert new.currency == "CNY" and old.currency is None


def test_output_item_and_cost_are_task_level():
    item = {"fileUrl": "https://cdn.example/a/b.png?x=1", "fileType": "png", "nodeId": "9",
            "taskCostTime": "83", "consumeCoins": "17", "consumeMoney": None, "thirdPartyConsumeMoney": None}
    out = records.TaskOutput.parse(item)
    assert (out.url, out.file_type, out.node_id) == (item["fileUrl"], "png", "9")
    cost = records.TaskCost.parse(item)
    assert cost.coins == 17 and cost.seconds == 83 and cost.money is None
    assert cost.describe() == "17 coins, 83 s"
    # fileType missing: the URL's extension is used.
    assert records.TaskOutput.parse({"fileUrl": "https://x/y/z.webm?sig=1"}).file_type == "webm"


@pytest.mark.parametrize("code", [802, 806])
def test_auth_errors_name_the_site_and_suggest_the_other(code):
    exc = codes.error_for(code, "APIKEY_UNAUTHORIZED", None, site=sites.resolve_site("cn"), key_hint="…cdef",
                          keys=(KEY,), operation="create")
    assert isinstance(exc, errors.AuthError)
    assert "www.runninghub.cn" in str(exc) and "'ai'" in str(exc) and "…cdef" in str(exc)
    exc_ai = codes.error_for(code, "user not exist", None, site=sites.resolve_site("ai"), key_hint="…cdef")
    assert "www.runninghub.ai" in str(exc_ai) and "'cn'" in str(exc_ai)


@pytest.mark.parametrize("code,cls,phrase", [
    (416, "InsufficientFundsError", "top up"),
    (810, "WorkflowNotReadyError", "run it once"),
    (435, "MembershipError", "'plus'"),
    (421, "CapacityError", "nothing was created"),
    (415, "CapacityError", "nothing was created"),
    (809, "UploadTooLargeError", "smaller"),
    (380, "WorkflowNotFoundError", "workflow id"),
    (901, "WorkflowNotFoundError", "AI app id"),
    (807, "TaskNotFoundError", "unknown"),
    (301, "ParameterError", "inputs"),
])
def test_each_code_maps_to_an_actionable_error(code, cls, phrase):
    exc = codes.error_for(code, "X", None, site=sites.resolve_site("cn"), key_hint="…cdef")
    assert type(exc).__name__ == cls
    assert phrase in str(exc)
    assert exc.code == code


def test_server_text_echoing_a_key_is_scrubbed():
    exc = codes.error_for(301, f"bad apiKey {KEY}", None, site=sites.resolve_site("cn"), key_hint="…cdef",
                          keys=(KEY,))
    assert KEY not in str(exc) and "…cdef" in str(exc)


def test_task_state_parsing():
    assert records.TaskState.parse("success") is records.TaskState.SUCCESS
    assert records.TaskState.parse("CANCELLED") is records.TaskState.CANCEL
    assert records.TaskState.SUCCESS.finished and not records.TaskState.RUNNING.finished
