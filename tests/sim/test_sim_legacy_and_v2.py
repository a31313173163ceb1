"""Legacy drift shapes, and the v2 (Bearer-only) endpoints."""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import requests
from PIL import Image

from support.images import png_bytes
from support.simulator import WORKFLOWS


def test_legacy_drift_shapes(api, sim):
    sim.configure(legacy=True, concurrency=1, run_seconds=0.3)
    created = api.create("empty")
    assert created["code"] == 0 and created["msg"] in ("", "SUCCESS") and created["errorMessages"] is None
    running_id = created["data"]["taskId"]
    queued_id = api.task_id("empty")
    queued = api.outputs(queued_id)
    assert queued["code"] == 0 and queued["data"] is None and re.search(r"[\u4e00-\u9fff]", queued["msg"])
    running = api.outputs(running_id)
    assert running["code"] == 0 and running["data"] is None and re.search(r"[\u4e00-\u9fff]", running["msg"])
    assert "errorMessages" in running
    done = api.wait(running_id)
    assert done["code"] == 0 and done["msg"] == "SUCCESS" and len(done["data"]) == 2
    failed = api.wait(api.task_id("fail"), timeout=5)
    assert failed["code"] == 500 and failed["data"]["failedReason"]["node_id"] == "2"
    account = api.call("accountStatus", {"apikey": api.key})["data"]
    assert isinstance(account["remainCoins"], int) and isinstance(account["currentTaskCounts"], int)


def test_legacy_success_msg_is_configurable_and_errors_keep_codes(api, sim):
    sim.configure(legacy=True, legacy_success_msg="")
    assert api.create("empty")["msg"] == ""
    bad = api.create("1999999999999999999")
    assert bad["code"] == 380 and bad["errorMessages"] is None


def test_legacy_mode_switches_back(api, sim):
    sim.configure(legacy=True)
    sim.configure(legacy=False)
    reply = api.create("empty")
    assert reply["msg"] == "success" and "errorMessages" not in reply


def _v2(sim, path, body=None, key=None, **kw):
    headers = {"Authorization": f"Bearer {key or sim.keys[0]}"} if key != "" else {}
    return requests.post(sim.base_url + path, json=body, headers=headers, timeout=10, **kw).json()


def test_v2_run_and_query(sim):
    sim.configure(run_seconds=0.2)
    run = _v2(sim, f"/openapi/v2/run/workflow/{WORKFLOWS['text']}",
              {"nodeInfoList": [{"nodeId": "1", "fieldName": "value", "fieldValue": "v2 text"}]})
    assert set(run) == {"taskId", "status", "errorCode", "errorMessage", "results", "clientId", "promptTips"}
    assert run["errorCode"] == "" and run["results"] is None and run["status"] in ("QUEUED", "RUNNING")
    task_id = run["taskId"]
    query = _v2(sim, "/openapi/v2/query", {"taskId": task_id})
    assert query["status"] == "RUNNING" and query["results"] is None
    query = sim.wait_for(lambda: (q := _v2(sim, "/openapi/v2/query", {"taskId": task_id}))["status"] == "SUCCESS" and q)
    (result,) = query["results"]
    assert result["outputType"] == "txt" and result["text"] == "v2 text" and result["nodeId"] == "2"
    assert requests.get(result["url"], timeout=5).text == "v2 text"
    assert query["usage"]["consumeCoins"] == "17" and query["failedReason"] == {}  # {} as in the real docs


def test_v2_ai_app_and_errors(sim):
    run = _v2(sim, f"/openapi/v2/run/ai-app/{WORKFLOWS['empty']}", {})
    assert run["errorCode"] == ""
    assert _v2(sim, f"/openapi/v2/run/ai-app/{WORKFLOWS['empty']}", {}, key="")["errorCode"] == "1002"
    assert _v2(sim, "/openapi/v2/query", {"taskId": "1234567890123456789"})["errorCode"] == "1004"
    bad = _v2(sim, f"/openapi/v2/run/workflow/{WORKFLOWS['empty']}",
              {"nodeInfoList": [{"nodeId": "9", "fieldName": "x", "fieldValue": 1}]})
    assert bad["errorCode"] == "1101" and bad["errorMessage"] == "APIKEY_INVALID_NODE_INFO"
    # v2 ignores a key in the body
    body_key = requests.post(sim.base_url + "/openapi/v2/query", json={"apiKey": sim.keys[0], "taskId": "1"},
                             timeout=5).json()
    assert body_key["errorCode"] == "1002"


def test_v2_cancel_through_v1_shows_cancel(api, sim):
    sim.configure(run_seconds=5)
    task_id = _v2(sim, f"/openapi/v2/run/workflow/{WORKFLOWS['empty']}", {})["taskId"]
    api.call("cancel", {"apiKey": api.key, "taskId": task_id})
    assert _v2(sim, "/openapi/v2/query", {"taskId": task_id})["status"] == "CANCEL"
    assert api.status(task_id)["data"] == "FAILED"


def test_v2_upload_binary(api, sim):
    data = b"RIFF" + bytes(100)
    reply = requests.post(sim.base_url + "/openapi/v2/media/upload/binary",
                          headers={"Authorization": f"Bearer {sim.keys[0]}"},
                          files={"file": ("sound.wav", io.BytesIO(data))}, timeout=5).json()
    assert reply["code"] == 0 and reply["message"] == "success"
    assert reply["data"]["type"] == "audio" and reply["data"]["fileName"].startswith("openapi/")
    assert reply["data"]["size"] == str(len(data))
    assert requests.get(reply["data"]["download_url"], timeout=5).content == data
    sim.configure(max_upload_mb=0.00001)
    big = requests.post(sim.base_url + "/openapi/v2/media/upload/binary",
                        headers={"Authorization": f"Bearer {sim.keys[0]}"},
                        files={"file": ("sound.wav", io.BytesIO(data))}, timeout=5).json()
    assert big["code"] == 1008 and big["data"] is None
    stranger = requests.post(sim.base_url + "/openapi/v2/media/upload/binary", headers={"Authorization": "Bearer x"},
                             files={"file": ("sound.wav", io.BytesIO(data))}, timeout=5).json()
    assert stranger == {"code": 401, "message": "ApiKey verification failed: API Key不存在", "data": None}


def test_a_v2_query_of_a_task_id_that_is_no_number_cannot_be_read(sim):
    """Some clients check a key with a dummy query (`aic-connection-test`): the real service
    answers that it could not read the body, with empty id and status."""
    reply = _v2(sim, "/openapi/v2/query", {"taskId": "aic-connection-test"})
    assert reply["taskId"] == "" and reply["status"] == "" and reply["errorCode"] == "1007"
    assert reply["errorMessage"] == "failed to parse request body" and reply["failedReason"] == {}
    assert _v2(sim, "/openapi/v2/query", {"taskId": "1999999999999999999"})["errorCode"] == "1004"  # a number


def test_a_v2_upload_is_named_as_the_real_service_names_it_and_runs(api, sim):
    """v2's upload answers `openapi/<sha256>.<ext>` (v1's `api/...`), and a loader takes it."""
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    reply = requests.post(sim.base_url + "/openapi/v2/media/upload/binary",
                          headers={"Authorization": f"Bearer {sim.keys[0]}"},
                          files={"file": ("in.png", io.BytesIO(png_bytes(pixels)))}, timeout=5).json()
    name = reply["data"]["fileName"]
    assert name == f"openapi/{hashlib.sha256(png_bytes(pixels)).hexdigest()}.png"
    [out] = api.run("invert", [("1", "image", name)])["data"]
    inverted = Image.open(io.BytesIO(api.download(out["fileUrl"]).content)).convert("RGB")
    assert np.array_equal(np.asarray(inverted), 255 - pixels)


def test_an_api_error_fault_on_a_v2_endpoint_answers_in_v2s_shape(sim):
    """A tester's injected business error on a v2 endpoint comes back as v2 answers errors: a
    string errorCode (a v2 code as given, e.g. 1003 rate limited, or a v1 code's counterpart)."""
    sim.fault("v2/query", "api_error", code=1003, msg="rate limited")
    limited = _v2(sim, "/openapi/v2/query", {"taskId": "1234567890123456789"})
    assert (limited["errorCode"], limited["errorMessage"], limited["status"]) == ("1003", "rate limited", "FAILED")
    assert "code" not in limited
    sim.fault("v2/run/workflow", "api_error", code=421)
    full = _v2(sim, f"/openapi/v2/run/workflow/{WORKFLOWS['empty']}", {})
    assert full["errorCode"] == "1011" and full["taskId"] == ""
    sim.fault("v2/upload", "api_error", code=1501, msg="content moderation")
    moderated = requests.post(sim.base_url + "/openapi/v2/media/upload/binary",
                              headers={"Authorization": f"Bearer {sim.keys[0]}"},
                              files={"file": ("a.wav", io.BytesIO(b"RIFF" + bytes(100)))}, timeout=5).json()
    assert moderated == {"code": 1501, "message": "content moderation", "data": None}
