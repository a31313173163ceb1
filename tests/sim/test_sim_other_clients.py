"""Other people's RunningHub clients, replayed as raw HTTP: the requests they send (paths,
headers, body shapes) must get the replies they rely on. One test per flow; each names the
public client it follows. Where a client and the protocol page differ, the page wins and the
test says so."""

from __future__ import annotations

import io
import json
import time
from urllib.parse import urlsplit

import numpy as np
import requests
import websocket
from PIL import Image

from support.simulator import WORKFLOWS
from ws_client import ws_url


def _png(value: int = 40) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_sdk_flow_with_host_header_bearer_and_status_polling(sim):
    """difyz9/runninghub-sdk: every request carries `Host: www.runninghub.cn`, Bearer and the
    key in the body; it polls /task/openapi/status until SUCCESS, then reads outputs and
    downloads fileUrl with a bare GET. The Host header must not leak into any URL."""
    headers = {"Host": "www.runninghub.cn", "Content-Type": "application/json",
               "Authorization": f"Bearer {sim.keys[0]}"}
    sim.configure(run_seconds=0.3)

    def post(path, body):
        reply = requests.post(sim.base_url + path, data=json.dumps({**body, "apiKey": sim.keys[0]}),
                              headers=headers, timeout=10)
        assert reply.status_code == 200
        return reply.json()

    created = post("/task/openapi/create", {"workflowId": WORKFLOWS["noise"], "addMetadata": True,
                                            "usePersonalQueue": False,
                                            "nodeInfoList": [{"nodeId": "1", "fieldName": "seed", "fieldValue": 7}]})
    assert created["code"] == 0
    task_id = created["data"]["taskId"]
    deadline = time.monotonic() + 15
    while (status := post("/task/openapi/status", {"taskId": task_id}))["data"] != "SUCCESS":
        assert status["code"] == 0 and status["data"] in ("CREATE", "QUEUED", "RUNNING")
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (item,) = post("/task/openapi/outputs", {"taskId": task_id})["data"]
    assert "runninghub.cn" not in item["fileUrl"] and urlsplit(item["fileUrl"]).hostname == "127.0.0.1"
    assert requests.get(item["fileUrl"], timeout=10).content[:4] == b"\x89PNG"
    account = post("/uc/openapi/accountStatus", {})  # sends `apiKey` + Bearer, not `apikey`: Bearer serves
    assert account["code"] == 0 and account["data"]["currentTaskCounts"] == "0"


def test_sdk_v2_upload_then_v1_create_with_the_returned_file_name(sim):
    """difyz9/runninghub-sdk upload_image: multipart `file` to /openapi/v2/media/upload/binary
    with Bearer only, then `fileName` as a LoadImage value in a v1 create."""
    data = _png(90)
    upload = requests.post(sim.base_url + "/openapi/v2/media/upload/binary", files={"file": ("in.png", data)},
                           headers={"Authorization": f"Bearer {sim.keys[0]}"}, timeout=10).json()
    assert upload["code"] == 0 and upload["message"] == "success"
    assert upload["data"]["fileName"].startswith("api/") and upload["data"]["type"] == "image"
    assert requests.get(upload["data"]["download_url"], timeout=10).content == data
    body = {"apiKey": sim.keys[0], "workflowId": WORKFLOWS["invert"],
            "nodeInfoList": [{"nodeId": "1", "fieldName": "image", "fieldValue": upload["data"]["fileName"]}]}
    task_id = requests.post(sim.base_url + "/task/openapi/create", json=body, timeout=10).json()["data"]["taskId"]
    reply = sim.wait_for(lambda: (r := requests.post(sim.base_url + "/task/openapi/outputs", timeout=10,
                                                    json={"apiKey": sim.keys[0], "taskId": task_id}).json())
                         ["code"] == 0 and r)
    assert np.array_equal(_pixels(requests.get(reply["data"][0]["fileUrl"], timeout=10).content),
                          255 - _pixels(data))


def test_official_async_node_flow_branches_on_msg(sim):
    """HM-RunningHub ComfyUI_RH_APICall (async batch node): ai-app/run with an int webappId,
    User-Agent and Content-Type only; polls outputs and branches on `msg`
    (APIKEY_TASK_IS_QUEUED / APIKEY_TASK_IS_RUNNING with data.netWssUrl) before `code`."""
    sim.configure(concurrency=1, run_seconds=2.0)
    headers = {"Content-Type": "application/json", "User-Agent": "ComfyUI-RH-APICall-Node/1.0"}
    ids = []
    for _ in range(2):
        reply = requests.post(sim.base_url + "/task/openapi/ai-app/run", headers=headers, timeout=10,
                              json={"webappId": int(WORKFLOWS["empty"]), "apiKey": sim.keys[0], "nodeInfoList": []})
        ids.append(reply.json()["data"]["taskId"])
    seen, done = set(), {}
    deadline = time.monotonic() + 15
    while len(done) < len(ids):  # both tasks polled in turn, as the node's batch does
        for task_id in set(ids) - set(done):
            reply = requests.post(sim.base_url + "/task/openapi/outputs", headers=headers, timeout=10,
                                  json={"taskId": task_id, "apiKey": sim.keys[0]}).json()
            if reply["code"] == 0 and isinstance(reply["data"], list) and reply["data"]:
                done[task_id] = reply["data"]
                continue
            seen.add(reply["msg"])
            if reply["msg"] == "APIKEY_TASK_IS_RUNNING":
                assert reply["data"]["netWssUrl"].startswith("ws://")
            else:
                assert reply["msg"] == "APIKEY_TASK_IS_QUEUED" and reply["data"] is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert all({i["fileType"] for i in items} == {"png"} for items in done.values())
    assert seen == {"APIKEY_TASK_IS_QUEUED", "APIKEY_TASK_IS_RUNNING"}


def test_official_pack_websocket_flow(sim):
    """The official pack's main flow: create, take netWssUrl from the create reply (or an 804
    reply), follow the socket until execution_success, then read outputs."""
    sim.configure(run_seconds=1.0, progress_steps=4)
    data = requests.post(sim.base_url + "/task/openapi/create", timeout=10,
                         json={"apiKey": sim.keys[0], "workflowId": WORKFLOWS["empty"]}).json()["data"]
    url = data["netWssUrl"] or requests.post(sim.base_url + "/task/openapi/outputs", timeout=10, json={
        "apiKey": sim.keys[0], "taskId": data["taskId"]}).json()["data"]["netWssUrl"]
    socket = websocket.create_connection(url, timeout=15)
    progress = []
    try:
        while True:
            msg = json.loads(socket.recv())
            if msg["type"] == "progress":
                progress.append((msg["data"]["value"], msg["data"]["max"]))
            if msg["type"] == "execution_success":
                break
            assert msg["type"] not in ("execution_error", "execution_interrupted")
    finally:
        socket.close()
    assert progress and progress[-1] == (4, 4)
    outputs = requests.post(sim.base_url + "/task/openapi/outputs", timeout=10,
                            json={"apiKey": sim.keys[0], "taskId": data["taskId"]}).json()
    assert outputs["code"] == 0 and len(outputs["data"]) == 2


def test_official_pack_websocket_flow_with_instant_tasks(sim):
    """`--run-seconds 0` (the command line's default): the task has ended before the client
    connects to its netWssUrl; the socket then says how it ended instead of staying silent
    (the official pack would wait on it until its own timeout)."""
    sim.configure(run_seconds=0)
    data = requests.post(sim.base_url + "/task/openapi/create", timeout=10,
                         json={"apiKey": sim.keys[0], "workflowId": WORKFLOWS["empty"]}).json()["data"]
    assert sim.wait_for(lambda: sim.task(data["taskId"])["status"] == "SUCCESS")
    socket = websocket.create_connection(ws_url(sim, data["clientId"]), timeout=5)
    try:
        messages = [json.loads(socket.recv()) for _ in range(3)]
    finally:
        socket.close()
    assert [m["type"] for m in messages] == ["status", "execution_success", "executing"]
    assert messages[1]["data"]["prompt_id"] == messages[2]["data"]["prompt_id"]
    assert messages[2]["data"]["node"] is None
    outputs = requests.post(sim.base_url + "/task/openapi/outputs", timeout=10,
                            json={"apiKey": sim.keys[0], "taskId": data["taskId"]}).json()
    assert outputs["code"] == 0 and len(outputs["data"]) == 2


def test_docs_http_client_ai_app_with_descriptions_and_bare_status(sim):
    """The readme's http.client example: explicit `Host: www.runninghub.cn`, webappId as a
    number, nodeInfoList items with `description`; then /task/openapi/status (a bare string)."""
    import http.client

    host, port = urlsplit(sim.base_url).hostname, urlsplit(sim.base_url).port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Host": "www.runninghub.cn", "Content-Type": "application/json"}
    payload = json.dumps({"webappId": int(WORKFLOWS["noise"]), "apiKey": sim.keys[0], "nodeInfoList": [
        {"nodeId": "1", "fieldName": "seed", "fieldValue": "11", "description": "seed"}]})
    conn.request("POST", "/task/openapi/ai-app/run", payload, headers)
    created = json.loads(conn.getresponse().read())
    assert created["code"] == 0 and created["data"]["taskStatus"] in ("QUEUED", "RUNNING")
    task_id = created["data"]["taskId"]

    def status():
        conn.request("POST", "/task/openapi/status", json.dumps({"apiKey": sim.keys[0], "taskId": task_id}), headers)
        return json.loads(conn.getresponse().read())

    assert sim.wait_for(lambda: status()["data"] == "SUCCESS")
    conn.close()
    assert sim.task(task_id)["graph"]["1"]["inputs"]["seed"] == "11"  # kept as sent; the remote node converts it


def test_js_upload_with_extra_form_fields(sim):
    """A Node.js client (axios + form-data) adds `webappId` to the upload form; extra fields
    are ignored and the reply is the usual `{fileName, fileType}`."""
    reply = requests.post(sim.base_url + "/task/openapi/upload", timeout=10, files={"file": ("x.png", _png())},
                          data={"apiKey": sim.keys[0], "webappId": WORKFLOWS["invert"], "fileType": "image"}).json()
    assert reply["code"] == 0 and reply["data"]["fileType"] == "image"
    assert reply["data"]["fileName"].startswith("api/") and reply["data"]["fileName"].endswith(".png")


def test_docs_v2_ai_app_run_with_string_personal_queue_and_query(sim):
    """The v2 readme's curl: POST /openapi/v2/run/ai-app/{id} with Bearer, `instanceType:
    "default"`, `usePersonalQueue: "false"` (a string), items with `description`; then
    /openapi/v2/query until SUCCESS with results[].url on the output host."""
    bearer = {"Authorization": f"Bearer {sim.keys[0]}"}
    run = requests.post(sim.base_url + f"/openapi/v2/run/ai-app/{WORKFLOWS['text']}", headers=bearer, timeout=10,
                        json={"nodeInfoList": [{"nodeId": "1", "fieldName": "value", "fieldValue": "hi v2",
                                                "description": "text"}],
                              "instanceType": "default", "usePersonalQueue": "false"}).json()
    assert run["errorCode"] == "" and run["status"] in ("QUEUED", "RUNNING")
    done = sim.wait_for(lambda: (q := requests.post(sim.base_url + "/openapi/v2/query", headers=bearer, timeout=10,
                                                    json={"taskId": run["taskId"]}).json())["status"] == "SUCCESS" and q)
    (result,) = done["results"]
    assert result["text"] == "hi v2" and result["outputType"] == "txt"
    assert requests.get(result["url"], timeout=10).text == "hi v2"


def test_undocumented_lora_upload_is_a_wrong_path(sim):
    """RH_LoraUploader and the SDK call /api/openapi/getLoraUploadUrl, which the protocol page
    does not list: the simulator answers like any unknown OpenAPI path (412 TOKEN_INVALID)."""
    reply = requests.post(sim.base_url + "/api/openapi/getLoraUploadUrl", timeout=10,
                          json={"apiKey": sim.keys[0], "loraName": "x", "md5Hex": "0" * 32}).json()
    assert reply == {"code": 412, "msg": "TOKEN_INVALID", "data": None}
