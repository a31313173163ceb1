"""The simulator with `--comfyui URL`: graphs run on a real ComfyUI (the `plain_comfy` host)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
import websocket
from PIL import Image
from ws_client import kinds, read_one, read_until_done, ws_url

from support.simulator import WORKFLOWS, Simulator

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def comfy_sim(plain_comfy):
    with Simulator(comfyui_url=plain_comfy.base_url) as sim:
        yield sim


def _post(sim, endpoint, body, **kw):
    reply = requests.post(sim.base_url + endpoint, json=body, timeout=60, **kw)
    assert reply.status_code == 200
    return reply.json()


def _wait(sim, task_id, timeout=120):
    return sim.wait_for(
        lambda: (r := _post(sim, "/task/openapi/outputs", {"apiKey": sim.keys[0], "taskId": task_id}))["code"]
        not in (804, 813) and r, timeout=timeout, interval=0.2)


def _upload(sim, data: bytes, name: str) -> str:
    reply = requests.post(sim.base_url + "/task/openapi/upload", files={"file": (name, io.BytesIO(data))},
                          data={"apiKey": sim.keys[0], "fileType": "image"}, timeout=30).json()
    assert reply["code"] == 0, reply
    return reply["data"]["fileName"]


def test_uploaded_image_is_inverted_by_real_comfyui(comfy_sim):
    pixels = np.random.default_rng(5).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    name = _upload(comfy_sim, buf.getvalue(), "photo.png")
    created = _post(comfy_sim, "/task/openapi/create", {
        "apiKey": comfy_sim.keys[0], "workflowId": WORKFLOWS["invert"],
        "nodeInfoList": [{"nodeId": "1", "fieldName": "image", "fieldValue": name}]})
    assert created["code"] == 0, created
    assert json.loads(created["data"]["promptTips"])["outputs_to_execute"] == ["3"]
    reply = _wait(comfy_sim, created["data"]["taskId"])
    assert reply["code"] == 0, reply
    (item,) = reply["data"]
    assert item["fileType"] == "png" and item["nodeId"] == "3"
    out = np.asarray(Image.open(io.BytesIO(requests.get(item["fileUrl"], timeout=30).content)).convert("RGB"))
    # ComfyUI's SaveImage truncates 255 * value instead of rounding: off by at most 1
    assert np.abs(out.astype(int) - (255 - pixels.astype(int))).max() <= 1


def test_preview_only_gives_no_outputs(comfy_sim):
    created = _post(comfy_sim, "/task/openapi/create",
                    {"apiKey": comfy_sim.keys[0], "workflowId": WORKFLOWS["preview_only"]})
    assert _wait(comfy_sim, created["data"]["taskId"]) == {"code": 0, "msg": "success", "data": []}


def test_comfyui_validation_error_is_433(comfy_sim):
    reply = _post(comfy_sim, "/task/openapi/create", {
        "apiKey": comfy_sim.keys[0], "workflowId": WORKFLOWS["empty"],
        "nodeInfoList": [{"nodeId": "1", "fieldName": "width", "fieldValue": "wide"}]})
    assert reply["code"] == 433
    tips = json.loads(reply["data"]["promptTips"])
    assert tips["result"] is False and "1" in tips["node_errors"]


def test_comfyui_execution_error_is_805(comfy_sim):
    name = _upload(comfy_sim, b"this is not a png", "broken.png")
    created = _post(comfy_sim, "/task/openapi/create", {
        "apiKey": comfy_sim.keys[0], "workflowId": WORKFLOWS["invert"],
        "nodeInfoList": [{"nodeId": "1", "fieldName": "image", "fieldValue": name}]})
    assert created["code"] == 0, created
    reply = _wait(comfy_sim, created["data"]["taskId"])
    assert reply["code"] == 805
    reason = reply["data"]["failedReason"]
    assert reason["node_id"] == "1" and reason["node_name"] == "LoadImage"
    assert reason["exception_type"] and isinstance(json.loads(reason["traceback"]), list)


def test_socket_relays_real_comfyui_messages(comfy_sim):
    """The task's socket carries the real ComfyUI's messages for its prompt (buffered while
    the simulated task is queued), and ends once the simulated task has succeeded."""
    comfy_sim.configure(queue_seconds=2.0)
    try:
        created = _post(comfy_sim, "/task/openapi/create",
                        {"apiKey": comfy_sim.keys[0], "workflowId": WORKFLOWS["empty"]})
        assert created["code"] == 0 and created["data"]["taskStatus"] == "QUEUED", created
        socket = websocket.create_connection(ws_url(comfy_sim, created["data"]["clientId"]), timeout=60)
        try:
            messages = read_until_done(socket)
        finally:
            socket.close()
    finally:
        comfy_sim.configure(queue_seconds=0)
    assert _post(comfy_sim, "/task/openapi/outputs", {"apiKey": comfy_sim.keys[0],
                                                      "taskId": created["data"]["taskId"]})["code"] == 0
    assert kinds(messages)[:3] == ["status", "execution_start", "execution_cached"]
    prompt_id = comfy_sim.task(created["data"]["taskId"])["promptId"]
    assert {m["data"]["prompt_id"] for m in messages[1:]} == {prompt_id}
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == ["1", "2", None]
    executed = next(m["data"] for m in messages if m["type"] == "executed")
    assert executed["node"] == "2" and executed["output"]["images"][0]["type"] == "output"
    assert kinds(messages)[-2:] == ["execution_success", "executing"]


def test_per_account_uploads_are_not_sent_to_comfyui_for_other_keys(comfy_sim):
    """With uploads per account, another key's task does not get the file: ComfyUI itself
    refuses the LoadImage (433), and the owner's task runs."""
    pixels = np.random.default_rng(11).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    comfy_sim.configure(uploads_per_account=True)
    try:
        name = _upload(comfy_sim, buf.getvalue(), "private.png")
        body = {"workflowId": WORKFLOWS["invert"],
                "nodeInfoList": [{"nodeId": "1", "fieldName": "image", "fieldValue": name}]}
        other = _post(comfy_sim, "/task/openapi/create", {**body, "apiKey": comfy_sim.keys[1]})
        assert other["code"] == 433 and "1" in json.loads(other["data"]["promptTips"])["node_errors"]
        own = _post(comfy_sim, "/task/openapi/create", {**body, "apiKey": comfy_sim.keys[0]})
        assert own["code"] == 0 and _wait(comfy_sim, own["data"]["taskId"])["code"] == 0
    finally:
        comfy_sim.configure(uploads_per_account=False)


def _shape(value):
    """The structure of a message without its values: dict keys (node ids folded), list items."""
    if isinstance(value, dict):
        keys = ["<id>" if k.isdigit() else k for k in value]
        return {k: _shape(v) for k, v in zip(keys, value.values())}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__ if value is not None else None


def test_builtin_messages_have_real_comfyuis_order_and_shapes(comfy_sim, sim):
    """The same workflow on the built-in executor and on a real ComfyUI 0.3.75: the same
    message types in the same order, each with the same fields (a node without a progress
    bar: progress_steps 0)."""
    runs = []
    for each in (comfy_sim, sim):
        each.configure(queue_seconds=2.0, progress_steps=0)
        try:
            created = _post(each, "/task/openapi/create", {"apiKey": each.keys[0], "workflowId": WORKFLOWS["empty"]})
            socket = websocket.create_connection(ws_url(each, created["data"]["clientId"]), timeout=60)
            try:
                runs.append(read_until_done(socket) + [read_one(socket)])
            finally:
                socket.close()
        finally:
            each.configure(queue_seconds=0, progress_steps=20)
    real, builtin = runs
    assert kinds(builtin) == kinds(real)
    for ours, theirs in zip(builtin, real):
        assert _shape(ours) == _shape(theirs), (ours, theirs)
