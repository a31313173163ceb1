"""The native ComfyUI endpoint `/proxy/{key}/…` relayed to a real ComfyUI 0.3.75 (`plain_comfy`):
real HTTP and websockets, no mocks."""

from __future__ import annotations

import io
import json
import secrets
import time
import uuid

import numpy as np
import pytest
import requests
import websocket
from PIL import Image

from support.simulator import Simulator, random_keys
from support.images import png_bytes as png

pytestmark = pytest.mark.e2e

SLOW_NODES = 40  # ImageBlur radius 31 on 512×512: ~0.3 s each on one free core
STRANGER = random_keys(1)[0]  # a key the simulator does not know


@pytest.fixture(scope="module")
def native_sim(plain_comfy):
    with Simulator(comfyui_url=plain_comfy.base_url, key_count=2) as sim:
        yield sim


@pytest.fixture
def nsim(native_sim):
    native_sim.reset()
    yield native_sim
    native_sim.reset()  # cancels (deletes / interrupts upstream) whatever a test left open


# ---------------------------------------------------------------------- helpers
def upload(base: str, data: bytes, name: str) -> dict:
    reply = requests.post(base + "/upload/image", files={"image": (name, io.BytesIO(data), "image/png")},
                          data={"overwrite": "true"}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def invert_graph(image: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"nat{secrets.token_hex(4)}"}},
    }


def slow_graph(nodes: int = SLOW_NODES) -> dict:
    """EmptyImage (a fresh colour: ComfyUI caches by inputs) → ImageBlur × nodes → SaveImage."""
    graph = {"1": {"class_type": "EmptyImage",
                   "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": secrets.randbelow(1 << 24)}}}
    previous = "1"
    for i in range(nodes):
        graph[str(10 + i)] = {"class_type": "ImageBlur", "inputs": {"image": [previous, 0], "blur_radius": 31, "sigma": 5.0}}
        previous = str(10 + i)
    graph["99"] = {"class_type": "SaveImage", "inputs": {"images": [previous, 0], "filename_prefix": "natslow"}}
    return graph


def submit(base: str, graph: dict, client_id: str = "", prompt_id: str | None = None) -> requests.Response:
    body = {"prompt": graph, "client_id": client_id or uuid.uuid4().hex}
    if prompt_id:
        body["prompt_id"] = prompt_id
    return requests.post(base + "/prompt", json=body, timeout=60)


def history(base: str, prompt_id: str) -> dict:
    reply = requests.get(f"{base}/history/{prompt_id}", timeout=30)
    assert reply.status_code == 200
    return reply.json()


def wait_history(sim: Simulator, base: str, prompt_id: str, timeout: float = 120) -> dict:
    return sim.wait_for(lambda: (h := history(base, prompt_id).get(prompt_id))
                        and h["status"].get("completed") is not None and h, timeout=timeout, interval=0.1)


def queue(base: str) -> dict:
    reply = requests.get(base + "/queue", timeout=30)
    assert reply.status_code == 200
    return reply.json()


def queue_ids(base: str, part: str) -> list[str]:
    return [item[1] for item in queue(base)[part]]


def socket_for(base: str, client_id: str) -> websocket.WebSocket:
    return websocket.create_connection(base.replace("http://", "ws://", 1) + f"/ws?clientId={client_id}", timeout=60)


def read_prompt(socket: websocket.WebSocket, prompt_id: str) -> list[dict]:
    """Text messages until `executing` null for `prompt_id`."""
    messages = []
    while True:
        frame = socket.recv()
        if isinstance(frame, bytes):
            continue
        msg = json.loads(frame)
        messages.append(msg)
        data = msg.get("data") or {}
        if msg["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            return messages


def drain(socket: websocket.WebSocket, seconds: float) -> list[dict]:
    """Every text message arriving within `seconds`."""
    messages, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        socket.settimeout(left)
        try:
            frame = socket.recv()
        except websocket.WebSocketTimeoutException:
            break
        if isinstance(frame, str):
            messages.append(json.loads(frame))
    return messages


def prompt_ids_in(messages: list[dict]) -> set[str]:
    return {(m.get("data") or {}).get("prompt_id") for m in messages} - {None}


def coins(sim: Simulator, key: str) -> int:
    reply = requests.post(sim.base_url + "/uc/openapi/accountStatus", json={"apikey": key}, timeout=10).json()
    return int(reply["data"]["remainCoins"])


# ---------------------------------------------------------------------- tests
def test_a_prompt_runs_and_history_and_view_give_the_real_output(nsim):
    mine, other = (nsim.proxy_url(k) for k in nsim.keys)
    pixels = np.random.default_rng(7).integers(0, 256, (20, 36, 3), dtype=np.uint8)
    uploaded = upload(mine, png(pixels), f"in_{secrets.token_hex(4)}.png")
    assert uploaded["type"] == "input"
    before = coins(nsim, nsim.keys[0])
    prompt_id = str(uuid.uuid4())
    reply = submit(mine, invert_graph(uploaded["name"]), "client-1", prompt_id)
    assert reply.status_code == 200, reply.text
    assert reply.json()["prompt_id"] == prompt_id  # the client's choice is kept

    entry = wait_history(nsim, mine, prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert entry["prompt"][3]["client_id"] == "client-1"  # the client's own id, not the upstream one
    (image,) = entry["outputs"]["3"]["images"]
    view = requests.get(mine + "/view", params=image, timeout=30)
    assert view.status_code == 200 and view.headers["Content-Type"] == "image/png"
    out = np.asarray(Image.open(io.BytesIO(view.content)).convert("RGB")).astype(int)
    assert np.abs(out - (255 - pixels.astype(int))).max() <= 1  # ComfyUI truncates: off by at most 1

    # billed exactly once, like a task; another key sees none of it
    (task,) = nsim.native_prompts(nsim.keys[0])
    assert task["promptId"] == prompt_id and task["status"] == "SUCCESS" and task["consumeCoins"] == 17
    assert coins(nsim, nsim.keys[0]) == before - 17
    assert nsim.count("native/prompt", nsim.keys[0]) == 1
    assert history(other, prompt_id) == {}
    assert prompt_id not in requests.get(other + "/history", timeout=30).json()
    assert prompt_id in requests.get(mine + "/history", timeout=30).json()
    assert requests.get(other + "/view", params=image, timeout=30).status_code == 404
    assert requests.get(other + "/view", params={"filename": uploaded["name"], "type": "input"},
                        timeout=30).status_code == 404
    assert requests.get(mine + "/view", params={"filename": uploaded["name"], "type": "input"},
                        timeout=30).content == png(pixels)
    assert nsim.native_prompts(nsim.keys[1]) == []


def test_comfyuis_own_400_passes_through_and_nothing_is_billed(nsim, plain_comfy):
    base = nsim.proxy_url(nsim.keys[0])
    for graph in ({"1": {"class_type": "NoSuchNodeAnywhere", "inputs": {}}},
                  {"1": {"class_type": "EmptyImage", "inputs": {"width": "wide", "height": 8, "batch_size": 1,
                                                                "color": 0}},
                   "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}):
        reply, direct = submit(base, graph), submit(plain_comfy.base_url, graph)
        assert reply.status_code == direct.status_code == 400
        assert reply.json() == direct.json() and "node_errors" in reply.json()  # unchanged
    assert "1" in reply.json()["node_errors"]
    assert nsim.native_prompts() == []


def test_object_info_system_stats_and_prompt_info(nsim):
    base = nsim.proxy_url(nsim.keys[0])
    info = requests.get(base + "/object_info", timeout=60).json()
    assert "ImageInvert" in info and "SaveImage" in info
    assert list(requests.get(base + "/object_info/ImageBlur", timeout=30).json()) == ["ImageBlur"]
    assert "system" in requests.get(base + "/system_stats", timeout=30).json()
    assert requests.get(base + "/prompt", timeout=30).json() == {"exec_info": {"queue_remaining": 0}}
    assert "ImageInvert" in requests.get(base + "/api/object_info", timeout=60).json()  # the front end's prefix


def test_the_plus_machines_endpoint_is_the_same_relay(nsim):
    """`/proxy-plus/{key}` (RunningHub's 48G machines; public clients pick it by GPU size)
    answers as `/proxy/{key}` does: here both go to the one executor."""
    plus = nsim.base_url + "/proxy-plus/" + nsim.keys[0]
    assert "system" in requests.get(plus + "/system_stats", timeout=30).json()
    assert "ImageInvert" in requests.get(plus + "/object_info/ImageInvert", timeout=30).json()
    reply = requests.get(nsim.base_url + "/proxy-plus/" + STRANGER + "/system_stats", timeout=30)
    assert reply.status_code == 401 and STRANGER[-8:] not in reply.text


def test_no_error_page_echoes_a_key(nsim):
    """The Spring 404 and 405 pages name the request's path: a key in it (a misspelt native
    prefix, a client that puts its key in a path) is redacted like in the log."""
    key = nsim.keys[0]
    for method, path in (("GET", f"/proxy-pluss/{key}/system_stats"), ("GET", f"/api/{key}"),
                         ("POST", f"/v1/{key}/x"), ("GET", "/task/openapi/create/" + key)):
        reply = requests.request(method, nsim.base_url + path, timeout=30)
        assert reply.status_code in (200, 404, 405), (path, reply.status_code)
        assert key[:-4] not in reply.text and key[4:] not in reply.text, (path, reply.text)
    assert requests.get(nsim.base_url + f"/x/{key}", timeout=30).json()["path"] == "/x/\u2026" + key[-4:]


def test_each_socket_gets_only_its_own_clients_messages(nsim):
    """Two keys using the same clientId, and a second client of the first key: each socket
    sees only the prompts its (key, clientId) submitted."""
    a, b = (nsim.proxy_url(k) for k in nsim.keys)
    sock_a, sock_a2, sock_b = socket_for(a, "shared"), socket_for(a, "bystander"), socket_for(b, "shared")
    try:
        first = [json.loads(s.recv()) for s in (sock_a, sock_a2, sock_b)]
        assert [m["type"] for m in first] == ["status"] * 3
        assert [m["data"]["sid"] for m in first] == ["shared", "bystander", "shared"]
        prompt_a = submit(a, slow_graph(2), "shared").json()["prompt_id"]
        prompt_b = submit(b, slow_graph(2), "shared").json()["prompt_id"]
        got_a, got_b = read_prompt(sock_a, prompt_a), read_prompt(sock_b, prompt_b)
        seen_by_bystander = drain(sock_a2, 1.0)
    finally:
        for s in (sock_a, sock_a2, sock_b):
            s.close()
    assert prompt_ids_in(got_a) == {prompt_a} and prompt_ids_in(got_b) == {prompt_b}
    for got, prompt_id in ((got_a, prompt_a), (got_b, prompt_b)):
        types = [m["type"] for m in got]
        assert "execution_start" in types and "executed" in types and "execution_success" in types
        assert [m["data"]["node"] for m in got if m["type"] == "executing"][-1] is None
    assert prompt_ids_in(seen_by_bystander) == set()
    assert {m["type"] for m in seen_by_bystander} <= {"status"}
    for msg in got_a + got_b + seen_by_bystander:  # queue sizes are the key's own
        if msg["type"] == "status":
            assert msg["data"]["status"]["exec_info"]["queue_remaining"] <= 1


def test_status_messages_count_the_keys_own_prompts_without_reading_the_upstream_queue(nsim):
    """ComfyUI broadcasts its whole queue's size; a key's socket gets its own: 1 while its
    prompt is queued or running (another key's queued behind it), 0 from its end on while
    the other key's still runs. Counted from the relay's records: no upstream /queue read."""
    a, b = (nsim.proxy_url(k) for k in nsim.keys)
    sock = socket_for(a, "counter")
    try:
        assert json.loads(sock.recv())["data"]["status"]["exec_info"]["queue_remaining"] == 0
        mine = submit(a, slow_graph(2), "counter").json()["prompt_id"]
        theirs = submit(b, slow_graph(4), "other").json()["prompt_id"]
        during = read_prompt(sock, mine)
        wait_history(nsim, b, theirs)
        after = drain(sock, 0.5)
    finally:
        sock.close()
    ended = next(i for i, m in enumerate(during) if m["type"] == "execution_success")
    counts = [(i > ended, m["data"]["status"]["exec_info"]["queue_remaining"])
              for i, m in enumerate(during) if m["type"] == "status"]
    counts += [(True, m["data"]["status"]["exec_info"]["queue_remaining"]) for m in after if m["type"] == "status"]
    assert {n for late, n in counts if not late} == {1}, counts
    assert {n for late, n in counts if late} == {0}, counts
    assert len(counts) >= 4  # submit, second submit, start or end of each: ComfyUI's own broadcasts
    assert nsim.count("native/upstream GET queue") == 0


def test_unknown_key_no_coins_and_missing_route(nsim):
    stranger = STRANGER
    for method, path in (("GET", "/object_info"), ("POST", "/prompt"), ("GET", "/history"), ("GET", "/queue"),
                         ("GET", "/view?filename=x.png"), ("POST", "/interrupt")):
        reply = requests.request(method, nsim.proxy_url(stranger) + path, json={"prompt": {}}, timeout=30)
        assert reply.status_code == 401, (method, path)
        assert reply.json()["error"]["type"] == "invalid_api_key"
        assert stranger not in reply.text and stranger[-4:] not in reply.text
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        socket_for(nsim.proxy_url(stranger), "c")
    assert refused.value.status_code == 401
    assert requests.get(nsim.base_url + "/proxy/", timeout=10).status_code == 401

    base = nsim.proxy_url(nsim.keys[0])
    nsim.configure(keys={nsim.keys[0]: {"coins": 3}})
    reply = submit(base, slow_graph(1))
    assert reply.status_code == 402 and reply.json()["error"]["type"] == "insufficient_balance"
    missing = requests.get(base + "/no/such/route", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert requests.get(base + "/interrupt", timeout=10).status_code == 405
    assert nsim.native_prompts() == []


def test_concurrency_delete_interrupt_and_key_isolation(nsim):
    mine, other = (nsim.proxy_url(k) for k in nsim.keys)
    nsim.configure(concurrency=2)
    running = submit(mine, slow_graph(), "c1").json()["prompt_id"]
    queued = submit(mine, slow_graph(), "c1").json()["prompt_id"]
    nsim.wait_for(lambda: queue_ids(mine, "queue_running") == [running], timeout=30, interval=0.05)
    assert queue_ids(mine, "queue_pending") == [queued]
    assert queue(mine)["queue_running"][0][3]["client_id"] == "c1"

    full = submit(mine, slow_graph(1), "c1")  # the key has 2 queued + running: refused, nothing queued
    assert full.status_code == 429
    assert full.json() == {"error": {"type": "too_many_prompts", "message": full.json()["error"]["message"]},
                           "node_errors": {}}
    assert len(nsim.native_prompts(nsim.keys[0])) == 2

    # the other key sees nothing and can affect nothing
    assert queue(other) == {"queue_running": [], "queue_pending": []}
    assert history(other, running) == {} and history(other, queued) == {}
    for body in ({"prompt_id": running}, {}):
        assert requests.post(other + "/interrupt", json=body, timeout=30).status_code == 200
    for body in ({"delete": [queued, running]}, {"clear": True}):
        assert requests.post(other + "/queue", json=body, timeout=30).status_code == 200
    time.sleep(1.0)
    assert queue_ids(mine, "queue_running") == [running] and queue_ids(mine, "queue_pending") == [queued]

    # the owner deletes the queued one: never run, never billed, its slot free again
    assert requests.post(mine + "/queue", json={"delete": [queued]}, timeout=30).status_code == 200
    assert queue_ids(mine, "queue_pending") == []
    third = nsim.wait_for(lambda: (r := submit(mine, slow_graph(1), "c1")).status_code == 200 and r, timeout=10,
                          interval=0.1)
    third_id = third.json()["prompt_id"]

    # ... and interrupts the running one
    assert requests.post(mine + "/interrupt", json={"prompt_id": running}, timeout=30).status_code == 200
    entry = wait_history(nsim, mine, running, timeout=60)
    assert entry["status"]["status_str"] == "error"
    assert "execution_interrupted" in [name for name, _data in entry["status"]["messages"]]
    assert wait_history(nsim, mine, third_id)["status"]["status_str"] == "success"
    assert history(mine, queued) == {}

    tasks = nsim.wait_for(lambda: (t := {x["promptId"]: x for x in nsim.native_prompts(nsim.keys[0])})
                          and all(x["status"] != "RUNNING" for x in t.values()) and t, timeout=10)
    assert tasks[running]["status"] == "FAILED" and tasks[running]["cancelled"]
    assert tasks[queued]["status"] == "FAILED" and tasks[queued]["cancelled"]
    assert tasks[running]["consumeCoins"] == 0 and tasks[queued]["consumeCoins"] == 0
    assert tasks[third_id]["consumeCoins"] == 17
    assert nsim.native_prompts(nsim.keys[1]) == []


def test_the_owners_global_interrupt_and_clear_act_on_its_own_prompts(nsim):
    """ComfyUI's global forms: `POST /interrupt {}` interrupts the key's own running prompt,
    `POST /queue {"clear": true}` deletes its own pending ones; another key's prompt runs on."""
    mine, other = (nsim.proxy_url(k) for k in nsim.keys)
    nsim.configure(concurrency=3)
    running = submit(mine, slow_graph(), "c").json()["prompt_id"]
    pending = [submit(mine, slow_graph(), "c").json()["prompt_id"] for _ in range(2)]
    others = submit(other, slow_graph(1), "c").json()["prompt_id"]
    nsim.wait_for(lambda: queue_ids(mine, "queue_running") == [running], timeout=30, interval=0.05)
    assert requests.post(mine + "/queue", json={"clear": True}, timeout=30).status_code == 200
    assert queue_ids(mine, "queue_pending") == [] and queue_ids(other, "queue_pending") == [others]
    assert requests.post(mine + "/interrupt", json={}, timeout=30).status_code == 200
    assert "execution_interrupted" in [n for n, _d in wait_history(nsim, mine, running, 60)["status"]["messages"]]
    assert wait_history(nsim, other, others)["status"]["status_str"] == "success"
    tasks = nsim.wait_for(lambda: (t := {x["promptId"]: x for x in nsim.native_prompts()})
                          and all(x["status"] != "RUNNING" for x in t.values()) and t, timeout=10)
    assert [tasks[p]["cancelled"] for p in (running, *pending, others)] == [True, True, True, False]
    assert [tasks[p]["consumeCoins"] for p in (running, *pending, others)] == [0, 0, 0, 17]


def test_duplicate_prompt_id_and_plain_get_on_ws(nsim):
    base = nsim.proxy_url(nsim.keys[0])
    prompt_id = str(uuid.uuid4())
    assert submit(base, slow_graph(1), "c", prompt_id).status_code == 200
    again = submit(nsim.proxy_url(nsim.keys[1]), slow_graph(1), "c", prompt_id)
    assert again.status_code == 400 and again.json()["error"]["type"] == "duplicate_prompt_id"
    assert wait_history(nsim, base, prompt_id)["status"]["status_str"] == "success"
    assert history(nsim.proxy_url(nsim.keys[1]), prompt_id) == {}
    plain = requests.get(base + "/ws?clientId=x", timeout=10)
    assert plain.status_code == 400 and plain.json()["error"]["type"] == "not_a_websocket"


def test_a_lost_prompt_reply_leaves_the_prompt_findable(nsim):
    """A fault after the prompt was queued (the reply never arrives): the client finds its own
    prompt_id in /queue or /history instead of submitting again."""
    base = nsim.proxy_url(nsim.keys[0])
    nsim.fault("native/prompt", "reset_after_commit")
    prompt_id = str(uuid.uuid4())
    with pytest.raises(requests.ConnectionError):
        submit(base, slow_graph(1), "c", prompt_id)
    assert wait_history(nsim, base, prompt_id)["status"]["status_str"] == "success"
    assert [t["promptId"] for t in nsim.native_prompts()] == [prompt_id]


def test_the_key_never_reaches_the_log(native_sim, plain_comfy):
    """Runs last in this module: everything above went through URLs holding the keys."""
    base = native_sim.proxy_url(native_sim.keys[0])
    native_sim.fault("native/history", "http_error", status=500)
    assert requests.get(base + "/history", timeout=30).status_code == 500
    log = native_sim.log_text()
    assert "/proxy/" not in log or "/proxy/\u2026" in log
    for key in [*native_sim.keys, STRANGER]:
        assert key not in log
        assert key not in requests.get(plain_comfy.base_url + "/history", timeout=30).text
    assert "native prompt" in log  # the log does talk about the endpoint
    assert "Traceback" not in log and "internal error" not in log


def test_uploads_streamed_chunked_and_too_large(nsim):
    """An upload with a Content-Length is relayed as it arrives; a chunked one is read first;
    one over the cap is 413 and never reaches ComfyUI."""
    base = nsim.proxy_url(nsim.keys[0])
    pixels = np.random.default_rng(11).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    streamed = upload(base, png(pixels), f"st_{secrets.token_hex(4)}.png")
    boundary = "rhsimtest" + secrets.token_hex(6)
    name = f"ch_{secrets.token_hex(4)}.png"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
             f'Content-Type: image/png\r\n\r\n'.encode(), png(pixels), f"\r\n--{boundary}--\r\n".encode()]
    chunked = requests.post(base + "/upload/image", data=iter(parts), timeout=30,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert chunked.status_code == 200, chunked.text
    for uploaded in (streamed, chunked.json()):
        view = requests.get(base + "/view", params={"filename": uploaded["name"], "type": "input"}, timeout=30)
        assert view.status_code == 200 and view.content == png(pixels)
    nsim.configure(max_upload_mb=0.01)
    try:
        big = requests.post(base + "/upload/image", timeout=30,
                            files={"image": ("big.png", io.BytesIO(b"\0" * (1 << 20) + b"\0" * 40000), "image/png")})
        assert big.status_code == 413 and big.json()["error"]["type"] == "file_too_large"
    finally:
        nsim.configure(max_upload_mb=30)


def test_a_prompt_followed_on_its_socket_is_billed_without_a_history_read(nsim):
    base = nsim.proxy_url(nsim.keys[0])
    sock = socket_for(base, "follower")
    try:
        prompt_id = submit(base, slow_graph(1), "follower").json()["prompt_id"]
        read_prompt(sock, prompt_id)
    finally:
        sock.close()
    task = nsim.wait_for(lambda: next((t for t in nsim.native_prompts(nsim.keys[0])
                                       if t["promptId"] == prompt_id and t["status"] == "SUCCESS"), None),
                         timeout=10, interval=0.05)
    assert task["consumeCoins"] == 17


def test_mask_upload_history_delete_free_and_extensions_as_comfyui_has_them(nsim):
    """The other routes of a local ComfyUI that clients call: `/upload/mask` onto one of the
    key's own images only, `POST /history` clearing only the key's own ended prompts, `/free`
    and `/extensions` answered."""
    mine, other = (nsim.proxy_url(k) for k in nsim.keys)
    pixels = np.random.default_rng(3).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    uploaded = upload(mine, png(pixels), f"masked_{secrets.token_hex(4)}.png")
    alpha = np.zeros((16, 24, 4), dtype=np.uint8)
    alpha[..., 3] = 255
    alpha[:8, :, 3] = 0
    ref = {"filename": uploaded["name"], "subfolder": uploaded["subfolder"], "type": "input"}

    def mask_upload(base: str):
        return requests.post(base + "/upload/mask", files={"image": ("mask.png", io.BytesIO(png(alpha)), "image/png")},
                             data={"original_ref": json.dumps(ref), "type": "input", "overwrite": "true"}, timeout=30)

    refused = mask_upload(other)  # another key's image is not its to read back, masked or not
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_original_ref"
    masked = mask_upload(mine)
    assert masked.status_code == 200, masked.text
    view = requests.get(mine + "/view", params={"filename": masked.json()["name"], "type": "input"}, timeout=30)
    back = np.asarray(Image.open(io.BytesIO(view.content)))
    assert back.shape == (16, 24, 4) and (back[:8, :, 3] == 0).all() and (back[8:, :, 3] == 255).all()

    ids = [submit(base, invert_graph(uploaded["name"] if base == mine else upload(base, png(pixels), "o.png")["name"]))
           .json()["prompt_id"] for base in (mine, mine, other)]
    for base, prompt_id in zip((mine, mine, other), ids):
        wait_history(nsim, base, prompt_id)
    assert requests.post(mine + "/history", json={"delete": [ids[0], ids[2]]}, timeout=30).status_code == 200
    assert history(mine, ids[0]) == {} and ids[1] in history(mine, ids[1]) and ids[2] in history(other, ids[2])
    assert requests.post(other + "/history", json={"clear": True}, timeout=30).status_code == 200
    assert history(other, ids[2]) == {} and ids[1] in history(mine, ids[1])  # the other key's clear spared it
    assert {t["status"] for t in nsim.native_prompts()} == {"SUCCESS"}  # deleting a history bills nothing again

    assert requests.post(mine + "/free", json={"unload_models": True}, timeout=30).status_code == 200
    extensions = requests.get(mine + "/extensions", timeout=30)
    assert extensions.status_code == 200 and isinstance(extensions.json(), list)
