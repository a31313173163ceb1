"""Texts from the network that echo a key, or a long part of it, are scrubbed before they
reach an exception (and so a node error, a log line, a status message or history); remote
validation errors show the remote message; a create answered 500 may have made a task.

The simulator's `api_error` fault makes the server answer whatever envelope we choose.
"""

from __future__ import annotations

import json

import pytest

from support.pack import pack_module
from support.secret_scan import assert_no_key
from support.simulator import WORKFLOWS

errors = pack_module("client.errors")
overrides = pack_module("client.overrides")


def echoes(key: str) -> str:
    """The key as a hostile or careless server might hand it back."""
    return f"full {key}, upper {key.upper()}, head {key[:12]}, middle {key[10:19]}"


def test_a_business_error_message_echoing_the_key_is_scrubbed(client, sim, no_key_in_logs):
    key = sim.keys[0]
    sim.fault("getJsonApiFormat", "api_error", code=301, msg=f"bad apiKey {echoes(key)}")
    with pytest.raises(errors.ParameterError) as info:
        client.workflow_api_json(WORKFLOWS["invert"])
    assert_no_key(str(info.value), [key])
    assert "…" + key[-4:] in str(info.value)
    assert_no_key(no_key_in_logs.text, [key], "log")


def test_a_failed_reason_echoing_the_key_is_scrubbed(client, sim, no_key_in_logs):
    key = sim.keys[0]
    handle = client.create_task(WORKFLOWS["empty"])
    reason = {"node_id": "2", "node_name": f"Loader {key[:12]}", "exception_type": "ValueError",
              "exception_message": f"token rejected: {echoes(key)}",
              "traceback": json.dumps([f"File x.py, line 1, key={key}", f"ValueError: {key[4:16]}"])}
    sim.fault("outputs", "api_error", code=805, msg=f"APIKEY_TASK_STATUS_ERROR {key}", data={"failedReason": reason})
    state = client.outputs(handle.task_id)
    assert state.failure is not None
    text = f"{state.failure} {state.failure.reason}"
    assert_no_key(text, [key])
    assert "remote node 2" in text and "ValueError" in text
    assert_no_key(no_key_in_logs.text, [key], "log")


def test_prompt_tips_echoing_the_key_are_scrubbed(client, sim):
    key = sim.keys[0]
    tips = {"result": False, "error": {"message": echoes(key)}, "node_errors": {"3": {
        "class_type": "KSampler", "errors": [{"type": "x", "message": f"Value {key[2:14]} not allowed",
                                              "details": key, "extra_info": {"input_name": "seed"}}]}}}
    sim.fault("create", "api_error", code=433, msg=f"VALIDATE_PROMPT_FAILED {key}",
              data={"promptTips": json.dumps(tips)})
    with pytest.raises(errors.ValidationFailedError) as info:
        client.create_task(WORKFLOWS["invert"])
    assert_no_key(f"{info.value} {json.dumps(info.value.node_errors)}", [key])
    assert "node 3 (KSampler)" in str(info.value)


def test_a_remote_validation_error_shows_the_remote_message(client, sim):
    with pytest.raises(errors.ValidationFailedError) as info:
        client.create_task(WORKFLOWS["noise"], [overrides.NodeOverride("1", "seed", -1)])
    assert info.value.code == 433
    assert "seed: Value -1 smaller than min of 0" in str(info.value), str(info.value)
    assert "seed: seed" not in str(info.value)


def test_a_create_answered_500_may_have_been_submitted(client, sim):
    sim.fault("create", "api_error", code=500, msg="UNKNOWN_ERROR", commit=True)
    with pytest.raises(errors.SubmissionUncertainError) as info:
        client.create_task(WORKFLOWS["empty"])
    message = str(info.value)
    assert "answered 500" in message and "may have been submitted" in message
    assert "check the task list on" in message and "try again later" not in message.lower()
    assert sim.count("create") == 1  # never resubmitted
