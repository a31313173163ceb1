"""Attacks on a real ComfyUI with the pack, over HTTP, as a web page or a rebinding domain
would make them (issue 8): no route answers anything that depends on a stored key beyond
its `…last4`, no key is sent to an address the caller chose, no route works under a
rebinding host name, and no key echoed by the server reaches an error, the log, /history
or /internal/logs.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

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
