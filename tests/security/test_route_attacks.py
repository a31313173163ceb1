"""Attacks on a real ComfyUI with the pack, over HTTP, as a web page or a rebinding domain
would make them (issue 8): no route answers anything that depends on a stored key beyond
its `…last4`, no key is sent to an address the caller chose, no route works under a
rebinding host name, and no key echoed by the server reaches an error, the log, /history
or /internal/logs.
"""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest
import requests
import websocket

from capture import CaptureServer
from support.graphs import run_fetch
from support.pack import pack_module
from support.secret_scan import assert_no_key, remember
from support.simulator import WORKFLOWS, Simulator, random_keys

pytestmark = pytest.mark.e2e

INVERT = WORKFLOWS["invert"]


def credentials(host):
    return host.user_dir / "runninghub" / "credentials.json"


@pytest.fixture
def plain(comfy_with_pack):
    """The pack with no RunningHub settings (so cn/ai are its only sites): no credentials
    file before or after."""
    credentials(comfy_with_pack).unlink(missing_ok=True)
    yield comfy_with_pack
    credentials(comfy_with_pack).unlink(missing_ok=True)


def post(host, path, body=None, **kw):
    return requests.post(host.base_url + path, json=body, timeout=60, **kw)


# --------------------------------------------------------------------------- item 1


def twin_keys() -> tuple[str, str]:
    """Two keys with the same last four characters, different everywhere else."""
    a, b = random_keys(2)
    b = b[:-4] + a[-4:]
    remember([b])
    return a, b


def attacker_session(host, victim: str) -> list[tuple[int, str]]:
    """What an attacker who knows the key's last four sees when guessing its fifth-last
    character through every profile field: each probe key ends in a guessed suffix."""
    seen = []
    for guess in (victim[-5:], "g" + victim[-4:]):
        probe = ("f" * 32)[:32 - len(guess)] + guess
        for body in ({"add_keys": [probe]}, {"remove_keys": [guess]}, {"remove_keys": ["…" + guess]},
                     {"remove_key_ids": ["k" + "0" * 20]}, {"add_keys": [probe]}, {"keys": [probe]}):
            resp = post(host, "/runninghub/profiles/victim", body)
            seen.append((resp.status_code, re.sub(r"k[0-9a-f]{20}", "<id>", resp.text)))
        post(host, "/runninghub/profiles/victim", {"keys": [victim]})  # back to the victim's pool
    return seen


def test_no_reply_depends_on_the_stored_key_beyond_its_last_four(plain):
    """The suffix oracle: the same requests against two profiles holding different keys with
    the same last four characters get the same answers, and the key is never lost."""
    first, second = twin_keys()
    answers = []
    for victim in (first, second):
        credentials(plain).unlink(missing_ok=True)
        post(plain, "/runninghub/profiles/victim", {"keys": [victim]})
        answers.append(attacker_session(plain, victim))
        assert json.loads(credentials(plain).read_text())["profiles"]["victim"]["keys"] == [victim]
    assert answers[0] == answers[1]
    for _status, text in answers[0]:
        assert_no_key(text, [first, second], "reply")


def test_max_keys_counts_the_stored_pool(plain):
    """Repeated adds used to store any number of keys (50 per request)."""
    many = [f"{i:032x}" for i in range(70)]
    for start in range(0, 50, 10):
        assert post(plain, "/runninghub/profiles/many", {"add_keys": many[start:start + 10]}).status_code == 200
    for extra in (many[50:60], many[:1]):  # new keys, or one already there: the same refusal
        refused = post(plain, "/runninghub/profiles/many", {"add_keys": extra})
        assert refused.status_code == 400 and "At most 50 keys per profile" in refused.json()["error"]
    assert len(json.loads(credentials(plain).read_text())["profiles"]["many"]["keys"]) == 50


# --------------------------------------------------------------------------- item 2


def test_a_key_is_never_sent_to_an_address_the_caller_chose(plain):
    key = random_keys(1)[0]
    with CaptureServer() as capture:
        post(plain, "/runninghub/profiles/default", {"add_keys": [key]})
        repoint = post(plain, "/runninghub/profiles/default", {"site": "custom", "base_url": capture.base_url})
        assert repoint.status_code == 400 and "RUNNINGHUB_ALLOWED_BASE_URLS" in repoint.json()["error"]
        replace = post(plain, "/runninghub/profiles/default", {"site": "custom", "base_url": capture.base_url,
                                                               "keys": [key]})
        assert replace.status_code == 400
        post(plain, "/runninghub/profiles/default/test")
        requests.get(f"{plain.base_url}/runninghub/workflows/{INVERT}/fields?refresh=1", timeout=60)
        post(plain, f"/runninghub/workflows/{INVERT}/check", {"overrides": []})
        assert capture.requests == [], "the pack sent requests to the attacker's address"
        stored = json.loads(credentials(plain).read_text())["profiles"]["default"]
        assert (stored["site"], stored.get("base_url"), stored["keys"]) == ("cn", None, [key])


def test_a_profile_pointed_elsewhere_before_the_fix_sends_nothing(plain):
    """A credentials file written by an older version (or by hand) whose profile points at
    an address the owner never allowed: the routes refuse to use it, naming the setting."""
    key = random_keys(1)[0]
    with CaptureServer() as capture:
        path = credentials(plain)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": 1, "profiles": {"default": {
            "site": capture.base_url, "base_url": capture.base_url, "keys": [key]}}}))
        test = post(plain, "/runninghub/profiles/default/test")
        fields = requests.get(f"{plain.base_url}/runninghub/workflows/{INVERT}/fields", timeout=60)
        assert capture.requests == []
        for resp in (test, fields):
            assert resp.status_code == 400 and "RUNNINGHUB_ALLOWED_BASE_URLS" in resp.json()["error"], resp.text


# --------------------------------------------------------------------------- item 3


def every_route() -> list[tuple[str, str]]:
    """Each route of the pack's table, with its path parameters filled in, also under /api."""
    table = pack_module("host.routes").ROUTES
    filled = [(method, re.sub(r"\{\w+\}", "default", path.replace("{workflow_id}", INVERT)))
              for method, path, _handler in table]
    return filled + [(method, "/api" + path) for method, path in filled]


@pytest.mark.parametrize("method, path", every_route())
def test_every_route_refuses_a_rebinding_host(plain, method, path):
    port = plain.port
    attack = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    body = {"add_keys": ["0123456789abcdef0123456789abcdef"]} if method == "POST" else None
    resp = requests.request(method, plain.base_url + path, json=body, headers=attack, timeout=60)
    assert resp.status_code == 403, resp.text
    message = resp.json()["error"]
    assert "RUNNINGHUB_ALLOWED_HOSTS=evil.example" in message and "DNS rebinding" in message
    assert not credentials(plain).exists()
    for host_header in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}"):
        ok = requests.request(method, plain.base_url + path, json=body, timeout=60, headers={"Host": host_header})
        assert "RUNNINGHUB_ALLOWED_HOSTS" not in ok.text, (host_header, ok.text)


CHANGING_ROUTES = [(method, path) for method, path in every_route() if method != "GET"]


@pytest.mark.parametrize("method, path", CHANGING_ROUTES)
def test_every_route_refuses_other_pages(plain, method, path):
    """A page posting from a sandboxed frame (`Origin: null`), to an address ComfyUI does not
    check origins for (0.0.0.0, an IPv4-mapped IPv6 literal), or from another port, gets 403;
    ComfyUI's own page sending a body that is not JSON (a form or text/plain post, which a
    page can send without the browser asking first) gets 415. Nothing changes either way."""
    port = plain.port
    body = json.dumps({"add_keys": ["0123456789abcdef0123456789abcdef"]})
    ours = "not from ComfyUI's own page"
    for headers, says in (({"Origin": "null", "Content-Type": "text/plain"}, ours),
                          ({"Origin": "null", "Content-Type": "application/json"}, ours),
                          ({"Host": f"0.0.0.0:{port}", "Origin": "http://evil.example",
                            "Content-Type": "application/json"}, ours),
                          ({"Host": f"[::ffff:7f00:1]:{port}", "Origin": "http://evil.example",
                            "Content-Type": "text/plain"}, ours),
                          ({"Origin": f"http://127.0.0.1:{port + 1}", "Sec-Fetch-Site": "same-site",
                            "Content-Type": "application/json"}, None)):  # ComfyUI's own check may answer first
        resp = requests.request(method, plain.base_url + path, data=body, headers=headers, timeout=60)
        assert resp.status_code == 403, (headers, resp.text)
        assert says is None or says in resp.json()["error"], resp.text
    own = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"):
        resp = requests.request(method, plain.base_url + path, data=body, timeout=60,
                                headers={**own, "Content-Type": content_type})
        assert resp.status_code == 415 and "Content-Type: application/json" in resp.json()["error"], resp.text
    assert not credentials(plain).exists()
    ok = requests.request(method, plain.base_url + path, json={}, headers=own, timeout=60)
    assert ok.status_code not in (403, 415), ok.text  # the page's own JSON request reaches the route


def test_a_deeply_nested_body_is_a_bad_request(plain):
    nested = "[" * 100000 + "]" * 100000
    resp = requests.post(plain.base_url + "/runninghub/group/convert", data=nested,
                         headers={"Content-Type": "application/json"}, timeout=60)
    assert resp.status_code == 400 and "nested too deeply" in resp.json()["error"], resp.text
    assert "Traceback" not in plain.log_text()[-5000:]


# --------------------------------------------------------------------------- item 4


@pytest.fixture(scope="module")
def echo_sim():
    with Simulator(run_seconds=0.2) as sim:
        yield sim


@pytest.fixture(scope="module")
def echo_host(comfy_host_factory, echo_sim):
    return comfy_host_factory(env={"RUNNINGHUB_BASE_URL": echo_sim.base_url, "RUNNINGHUB_API_KEY": echo_sim.keys[0]},
                              name="security-echo")


def echoes(key: str) -> str:
    return f"full {key}, upper {key.upper()}, head {key[:12]}, middle {key[10:19]}"


ECHO_FAULTS = {
    "msg": ("create", dict(code=301, msg="PARAMS_INVALID apiKey={echo}")),
    "promptTips": ("create", dict(code=433, msg="VALIDATE_PROMPT_FAILED", data={"promptTips": json.dumps(
        {"result": False, "node_errors": {"1": {"class_type": "EmptyImage", "errors": [
            {"type": "x", "message": "bad {echo}", "details": "{echo}", "extra_info": {"input_name": "width"}}]}}})})),
    "failedReason": ("outputs", dict(code=805, msg="APIKEY_TASK_STATUS_ERROR {echo}", data={"failedReason": {
        "node_id": "1", "node_name": "EmptyImage", "exception_type": "RuntimeError",
        "exception_message": "token {echo}", "traceback": json.dumps(["line {echo}"])}})),
}


@pytest.mark.parametrize("field", sorted(ECHO_FAULTS))
def test_a_key_echoed_by_the_server_reaches_no_error_log_or_history(echo_host, echo_sim, field):
    key = echo_sim.keys[0]
    echo_sim.reset()
    endpoint, params = ECHO_FAULTS[field]
    params = json.loads(json.dumps(params).replace("{echo}", echoes(key).replace('"', "")))
    echo_sim.fault(endpoint, "api_error", count=5, **params)
    try:
        result = echo_host.run(run_fetch(WORKFLOWS["empty"], save_images=False), timeout=120)
    finally:
        echo_sim.clear_faults()
    assert result.status == "error"
    message = result.error["exception_message"]
    assert "…" + key[-4:] in message, message  # the echo is there, redacted
    places = {"node error": json.dumps(result.error), "ComfyUI log": echo_host.log_text(),
              "/history": echo_host.get("/history").text, "/internal/logs": echo_host.get("/internal/logs").text,
              "events": json.dumps([e.data for e in result.events], default=str)}
    for where, text in places.items():
        assert_no_key(text, [key], where)


def test_a_spying_socket_hears_that_tasks_changed_but_nothing_about_them(echo_host, echo_sim):
    """Any page can open ComfyUI's /ws (a socket has no CORS; ComfyUI lets `Origin: null`
    through): the task panel's event tells it only that the ledger changed, not the task
    ids, seeds, costs or output URLs (those stay behind GET /runninghub/tasks); a node's
    status reaches only the page that queued it, so a script's prompt (no client id, which
    ComfyUI would broadcast) shows none."""
    echo_sim.reset()
    spy = websocket.create_connection(f"ws://127.0.0.1:{echo_host.port}/ws?clientId=spy", header=["Origin: null"],
                                      timeout=30)
    try:
        result = echo_host.run(run_fetch(WORKFLOWS["noise"], seed=secrets.randbelow(10**9)), timeout=120)
        assert result.status == "success"
        script = requests.post(echo_host.base_url + "/prompt", timeout=60,  # a script's: no client id
                               json={"prompt": run_fetch(WORKFLOWS["noise"], seed=secrets.randbelow(10**9))})
        prompt_id = script.json()["prompt_id"]
        echo_sim.wait_for(lambda: prompt_id in echo_host.get(f"/history/{prompt_id}").json(), timeout=120)
        statuses, heard = [], []
        spy.settimeout(1.0)
        try:
            while True:
                frame = spy.recv()
                message = json.loads(frame) if isinstance(frame, str) else {}
                if message.get("type") == "runninghub.tasks":
                    heard.append(message["data"])
                elif message.get("type") in ("runninghub.status", "progress_text"):
                    statuses.append(message)
        except websocket.WebSocketTimeoutException:
            pass
    finally:
        spy.close()
    assert heard and all(data == {} for data in heard), heard
    assert statuses == []  # the node's status (task id, cost) goes to the page that queued it, if any
    [task] = [t for t in echo_host.get("/runninghub/tasks").json()["tasks"] if t["status"] == "SUCCESS"][:1]
    assert task["task_id"] and task["outputs"]  # the panel itself still reads them


def test_another_page_cannot_queue_a_prompt_that_spends_coins(echo_host, echo_sim):
    """ComfyUI's /prompt is not the pack's, and its origin check misses `Origin: null`, a
    non-loopback address and a rebinding name: the pack's middleware refuses a prompt with
    its nodes sent from there (nothing created, nothing billed). ComfyUI's own page and
    scripts still queue it, and prompts without the pack's nodes are left to ComfyUI."""
    echo_sim.reset()
    port = echo_host.port
    graph = run_fetch(WORKFLOWS["noise"], seed=secrets.randbelow(10**9))
    body = json.dumps({"prompt": graph, "client_id": "page"})
    ours = []
    for headers in ({"Origin": "null", "Content-Type": "text/plain"},
                    {"Host": f"0.0.0.0:{port}", "Origin": "http://evil.example", "Content-Type": "text/plain"},
                    {"Host": f"[::ffff:7f00:1]:{port}", "Origin": "http://evil.example"},
                    {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},  # DNS rebinding
                    {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}):
        for path in ("/prompt", "/api/prompt"):
            resp = requests.post(echo_host.base_url + path, data=body, headers=headers, timeout=60)
            assert resp.status_code == 403, (headers, resp.text)
            if not resp.content:  # a newer ComfyUI's own origin check refuses some of them first
                continue
            ours.append(headers)
            assert resp.json()["error"]["type"] == "runninghub_prompt_refused", resp.text
            assert "not from ComfyUI's own page" in resp.json()["error"]["message"] \
                or "DNS rebinding" in resp.json()["error"]["message"]
    assert {"Origin": "null", "Content-Type": "text/plain"} in ours, ours  # ComfyUI lets that one through
    # bodies only ComfyUI reads as they are meant: it decodes with the charset the request names
    utf7 = body.replace("RHRunWorkflow", "RH+AFI-unWorkflow").replace("RHFetchOutputs", "RH+AEY-etchOutputs")
    assert json.loads(utf7.encode().decode("utf-7"))["prompt"] == graph
    latin = json.dumps({"prompt": graph, "client_id": "page\u00ff"}, ensure_ascii=False).encode("latin-1")
    odd_class = json.dumps({"prompt": {**graph, "99": {"class_type": ["RHRunWorkflow"], "inputs": {}}}})
    for data, content_type in ((utf7.encode(), "text/plain;charset=utf-7"), (latin, "text/plain; charset=latin-1"),
                               (body.encode(), "text/plain;charset=x-no-such-charset"),
                               (odd_class.encode(), "text/plain")):
        resp = requests.post(echo_host.base_url + "/prompt", data=data, timeout=60,
                             headers={"Origin": "null", "Content-Type": content_type})
        assert resp.status_code == 403 and resp.json()["error"]["type"] == "runninghub_prompt_refused", resp.text
    time.sleep(0.5)
    assert echo_sim.count("create") == 0 and echo_host.get("/queue").json()["queue_pending"] == []

    plain_graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                                "color": secrets.randbelow(2**24)}},
                   "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    other = requests.post(echo_host.base_url + "/prompt", data=json.dumps({"prompt": plain_graph}),
                          headers={"Origin": "null", "Content-Type": "text/plain"}, timeout=60)
    assert "runninghub" not in other.text  # not the pack's to judge: ComfyUI answers as it always has
    own = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    queued = requests.post(echo_host.base_url + "/prompt", data=body, headers=own, timeout=60)
    assert queued.status_code == 200, queued.text
    prompt_id = queued.json()["prompt_id"]
    echo_sim.wait_for(lambda: prompt_id in echo_host.get(f"/history/{prompt_id}").json(), timeout=120)
    assert echo_sim.count("create") == 1


def test_the_guard_knows_every_node_of_the_pack(echo_host):
    assert set(pack_module("host.prompt_guard").PACK_NODES) == set(echo_host.pack_node_ids())


# --------------------------------------------------------------------------- item 5


@pytest.mark.parametrize("address", ["169.254.169.254", "100.64.0.1", "[::ffff:169.254.169.254]", "0xa9fea9fe"])
def test_a_graph_refuses_an_output_url_on_a_local_address(echo_host, echo_sim, address):
    """The simulator is the owner's custom base URL (loopback): that lets its own host
    through, not cloud metadata, CGNAT or an encoded form of them."""
    echo_sim.reset()
    url = f"http://{address}/latest/meta-data/output.png"
    echo_sim.fault("outputs", "api_error", count=20, code=0, msg="success",
                   data=[{"fileUrl": url, "fileType": "png", "nodeId": "2", "taskCostTime": "1", "consumeCoins": "1"}])
    try:
        result = echo_host.run(run_fetch(WORKFLOWS["empty"]), timeout=120)
    finally:
        echo_sim.clear_faults()
    assert result.status == "error"
    message = result.error["exception_message"]
    assert "Refusing to download an output from" in message and "local, private or reserved" in message, message
