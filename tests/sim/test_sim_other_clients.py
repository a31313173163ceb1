"""Other people's RunningHub clients, replayed as raw HTTP: the requests they send (paths,
headers, body shapes) must get the replies they rely on. One test per flow; each names the
public client it follows. Where a client and the protocol page differ, the page wins and the
test says so."""

from __future__ import annotations

import hashlib
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
    assert upload["data"]["fileName"].startswith("openapi/") and upload["data"]["type"] == "image"
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


def test_ai_app_clients_read_its_fields_then_upload_and_run(sim):
    """The flow of several public AI-app clients (the official readme's example among them):
    GET /api/webapp/apiCallDemo for the app's nodeInfoList, set the IMAGE field to an
    uploaded file, run the app with that list, read its outputs."""
    app_id, key = WORKFLOWS["invert"], sim.keys[0]
    demo = requests.get(sim.base_url + "/api/webapp/apiCallDemo", params={"apiKey": key, "webappId": app_id},
                        headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    assert demo["code"] == 0 and demo["data"]["webappName"]
    fields = demo["data"]["nodeInfoList"]
    image = next(f for f in fields if f["fieldType"] == "IMAGE")
    assert image == {"nodeId": "1", "nodeName": "LoadImage", "fieldName": "image", "fieldValue": "example.png",
                     "fieldType": "IMAGE", "description": "Load Image"}
    assert {"nodeId": "3", "fieldName": "filename_prefix", "fieldType": "STRING"}.items() <= next(
        f for f in fields if f["fieldName"] == "filename_prefix").items()
    assert not any(isinstance(f["fieldValue"], list) for f in fields)  # links are no fields
    name = requests.post(sim.base_url + "/task/openapi/upload", files={"file": ("in.png", _png(90))},
                         data={"apiKey": key, "fileType": "image"}, timeout=10).json()["data"]["fileName"]
    image["fieldValue"] = name
    run = requests.post(sim.base_url + "/task/openapi/ai-app/run", timeout=10, json={
        "apiKey": key, "webappId": app_id, "nodeInfoList": fields}).json()
    assert run["code"] == 0, run
    outputs = sim.wait_for(lambda: (o := requests.post(sim.base_url + "/task/openapi/outputs", timeout=10, json={
        "apiKey": key, "taskId": run["data"]["taskId"]}).json())["code"] == 0 and o)
    [item] = outputs["data"]
    assert np.array_equal(_pixels(requests.get(item["fileUrl"], timeout=10).content), 255 - _pixels(_png(90)))

    unknown = requests.get(sim.base_url + "/api/webapp/apiCallDemo", params={"apiKey": key, "webappId": "404"},
                           timeout=10).json()
    assert unknown["code"] == 901
    assert requests.get(sim.base_url + "/api/webapp/apiCallDemo", params={"webappId": app_id},
                        timeout=10).json()["code"] != 0  # no key
    assert requests.post(sim.base_url + "/api/webapp/apiCallDemo", json={}, timeout=10).status_code == 405


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


def test_uploads_as_hand_written_clients_send_them(sim):
    """Public clients upload without `fileType`, with the key in the query string, a browser
    Blob named "blob", RFC 5987 file names, unquoted names or bare LF line ends: each is
    stored by its content (the real service takes them; it answered 301 before)."""
    data = _png(77)
    expected = f"api/{hashlib.sha256(data).hexdigest()}.png"
    url = sim.base_url + "/task/openapi/upload"

    def multipart(parts: list[tuple[str, bytes]], newline: bytes = b"\r\n") -> tuple[bytes, str]:
        body = b"".join(b"--XyZ" + newline + head.encode().replace(b"\r\n", newline) + newline * 2 + content + newline
                        for head, content in parts) + b"--XyZ--" + newline
        return body, "multipart/form-data; boundary=XyZ"

    key_part = ('Content-Disposition: form-data; name="apiKey"', sim.keys[0].encode())
    cases = {
        "no fileType": multipart([key_part, ('Content-Disposition: form-data; name="file"; filename="a.png"\r\n'
                                             'Content-Type: image/png', data)]),
        "a Blob": multipart([key_part, ('Content-Disposition: form-data; name="file"; filename="blob"', data)]),
        "RFC 5987 name, unquoted": multipart([('Content-Disposition: form-data; name=apiKey', sim.keys[0].encode()),
                                              ("Content-Disposition: form-data; name=file; "
                                               "filename*=UTF-8''%E5%9B%BE.png", data)]),
        "bare LF": multipart([key_part, ('Content-Disposition: form-data; name="file"; filename="a.png"', data)],
                             newline=b"\n"),
    }
    for what, (body, content_type) in cases.items():
        reply = requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=10).json()
        assert reply["code"] == 0 and reply["data"]["fileName"] == expected, (what, reply)
    assert reply["data"]["fileType"] == "image"  # the kind, when the client named none
    in_query = requests.post(url, params={"apiKey": sim.keys[0]}, files={"file": ("a.png", data)}, timeout=10).json()
    assert in_query["code"] == 0 and in_query["data"]["fileName"] == expected
    unknown = requests.post(url, data={"apiKey": sim.keys[0]}, files={"file": ("blob", b"plain text")}, timeout=10)
    assert unknown.json()["code"] == 301  # not an accepted type by name or content


def test_paths_with_a_doubled_or_trailing_slash_and_jackson_booleans(sim):
    """A base URL ending in "/" makes `//task/openapi/create`; some clients end paths with
    "/"; Jackson takes 0 and 1 for booleans. The real front merges and drops the slashes."""
    import http.client

    host, port = urlsplit(sim.base_url).hostname, urlsplit(sim.base_url).port
    conn = http.client.HTTPConnection(host, port, timeout=10)

    def post(path: str, body: dict) -> dict:
        conn.request("POST", path, json.dumps({**body, "apiKey": sim.keys[0]}), {"Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 200, (path, reply.status)
        return json.loads(reply.read())

    created = post("//task/openapi/create", {"workflowId": WORKFLOWS["noise"], "usePersonalQueue": 1})
    assert created["code"] == 0, created
    task_id = created["data"]["taskId"]
    assert sim.wait_for(lambda: post("/task/openapi/status/", {"taskId": task_id})["data"] == "SUCCESS")
    assert post("/task/openapi//outputs/", {"taskId": task_id})["code"] == 0
    conn.close()


def test_a_cancelled_tasks_reason_lists_the_nodes_that_ran_and_tracebacks_name_no_simulator_path(sim):
    sim.configure(run_seconds=5)
    base = {"apiKey": sim.keys[0]}
    task_id = requests.post(sim.base_url + "/task/openapi/create", timeout=10,
                            json={**base, "workflowId": WORKFLOWS["noise"]}).json()["data"]["taskId"]
    assert requests.post(sim.base_url + "/task/openapi/cancel", json={**base, "taskId": task_id}, timeout=10
                         ).json()["code"] == 0
    reply = requests.post(sim.base_url + "/task/openapi/outputs", json={**base, "taskId": task_id}, timeout=10).json()
    assert reply["code"] == 805 and isinstance(json.loads(reply["data"]["failedReason"]["current_outputs"]), list)
    sim.configure(run_seconds=0)
    failed = requests.post(sim.base_url + "/task/openapi/create", timeout=10,
                           json={**base, "workflowId": WORKFLOWS["fail"]}).json()["data"]["taskId"]
    assert sim.wait_for(lambda: sim.task(failed)["status"] == "FAILED")
    reason = requests.post(sim.base_url + "/task/openapi/outputs", json={**base, "taskId": failed}, timeout=10
                           ).json()["data"]["failedReason"]
    lines = json.loads(reason["traceback"])
    assert lines and all("rhsim" not in line and "/work/" not in line for line in lines), lines
