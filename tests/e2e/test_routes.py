"""The pack's HTTP routes (host/routes.py) over real HTTP: a real ComfyUI with the pack, the
RunningHub simulator on loopback behind it (RUNNINGHUB_BASE_URL).

What must hold: keys go in and never come out (replies, error texts, the server log show
only `…` + last 4); the credentials file is mode 0600; bad input is answered 400 with a
message; remote failures carry RunningHub's actionable text; network work has a deadline.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import time
from pathlib import Path

import pytest
import requests

from support.simulator import DEFAULT_WORKFLOWS, WORKFLOWS, Simulator, random_keys

pytestmark = pytest.mark.e2e

ROUTE_TIMEOUT = 2.0  # RUNNINGHUB_ROUTE_TIMEOUT of the host under test
SUBGRAPH_WORKFLOW = "1990000000000000001"
INVERT = WORKFLOWS["invert"]


def subgraph_workflow() -> dict:
    """API format of a workflow whose nodes sit inside a subgraph (ids joined by ':')."""
    return {
        "57:23": {"class_type": "EmptyImage", "_meta": {"title": "Canvas"},
                  "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
        "57:24": {"class_type": "ImageInvert", "_meta": {"title": "Invert"}, "inputs": {"image": ["57:23", 0]}},
        "9": {"class_type": "SaveImage", "_meta": {"title": "Save"},
              "inputs": {"images": ["57:24", 0], "filename_prefix": "sub"}},
        "10": {"class_type": "SimNoiseImage", "_meta": {"title": "Noise"},
               "inputs": {"seed": 7, "strength": 0.5, "grayscale": False}},
    }


@pytest.fixture(scope="module")
def keys():
    good, second, foreign = random_keys(3)
    return {"good": good, "second": second, "foreign": foreign}


@pytest.fixture(scope="module")
def sim(tmp_path_factory, keys):
    folder = tmp_path_factory.mktemp("workflows")
    for path in DEFAULT_WORKFLOWS.glob("*.json"):
        shutil.copy(path, folder / path.name)
    (folder / f"{SUBGRAPH_WORKFLOW}.json").write_text(json.dumps(subgraph_workflow()))
    with Simulator(workflows_dir=folder, keys=[keys["good"], keys["second"]],
                   extra_args=["--foreign-key", keys["foreign"]]) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def host(comfy_host_factory, sim):
    host = comfy_host_factory(env={"RUNNINGHUB_BASE_URL": sim.base_url,
                                   "RUNNINGHUB_ROUTE_TIMEOUT": str(ROUTE_TIMEOUT)},
                              fresh=True, name="routes")
    host.assert_pack_imported_cleanly()
    return host


@pytest.fixture
def api(host, sim, keys):
    """A fresh start for each test: no credentials file, no faults; every reply is checked
    for key leaks."""
    credentials(host).unlink(missing_ok=True)
    sim.reset()
    client = RouteClient(host, list(keys.values()))
    yield client
    client.assert_no_leaks()


def credentials(host) -> Path:
    return host.user_dir / "runninghub" / "credentials.json"


class RouteClient:
    """HTTP to the host; remembers every reply so a test can assert no key was in any."""

    def __init__(self, host, secrets):
        self.host = host
        self.secrets = secrets
        self.replies: list[str] = []

    def call(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        resp = requests.request(method, self.host.base_url + path, **kw)
        self.replies.append(f"{method} {path} -> {resp.status_code} {resp.text}")
        return resp

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def save(self, name: str, **change) -> dict:
        resp = self.post(f"/runninghub/profiles/{name}", json=change)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def assert_no_leaks(self) -> None:
        texts = self.replies + [self.host.log_text()]
        for secret in self.secrets:
            for text in texts:
                assert secret not in text, f"a key leaked into: {text[:300]}"


def error_of(resp: requests.Response, status: int) -> str:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"
    body = resp.json()
    assert set(body) >= {"error", "error_type", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


# --------------------------------------------------------------------------- profiles


def test_profiles_start_empty_and_list_sites(api, sim, host):
    body = api.get("/runninghub/profiles").json()
    assert body["profiles"] == []
    assert body["environment"] is None
    assert body["base_url_override"] == sim.base_url
    assert body["sites"] == {"cn": "https://www.runninghub.cn", "ai": "https://www.runninghub.ai"}
    assert body["credentials_file"] == str(credentials(host))
    # ComfyUI serves every route under /api as well (what the front end calls)
    assert api.get("/api/runninghub/profiles").json() == body


def test_a_key_goes_in_once_and_only_its_last_four_come_out(api, host, keys):
    key = keys["good"]
    reply = api.save("default", site="cn", add_keys=[key])
    [shown] = reply["profile"]["keys"]
    assert re.fullmatch(r"k[0-9a-f]{20}", shown["id"]) and key not in shown["id"]
    assert reply == {"profile": {"name": "default", "source": "credentials file", "site": "cn", "base_url": None,
                                 "host": "www.runninghub.cn", "keys": [{"id": shown["id"], "hint": "…" + key[-4:]}]},
                     "warnings": []}
    listed = api.get("/runninghub/profiles").json()["profiles"]
    assert listed == [reply["profile"]]

    path = credentials(host)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["profiles"]["default"]["keys"] == [key]  # the server holds it, the replies never do
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".credentials-")], "no temp file left"
    assert f"RunningHub profile 'default' saved: site www.runninghub.cn, keys …{key[-4:]}" in host.log_text()


def hints(reply: dict) -> list[str]:
    return [k["hint"] for k in reply["profile"]["keys"]]


def test_pool_add_replace_and_remove_by_id(api, host, keys):
    good, second = keys["good"], keys["second"]
    api.save("pool", add_keys=[good])
    reply = api.save("pool", add_keys=[second, good])  # a key already there is not added twice
    assert hints(reply) == ["…" + good[-4:], "…" + second[-4:]]

    good_id = reply["profile"]["keys"][0]["id"]
    reply = api.save("pool", remove_key_ids=[good_id])
    assert hints(reply) == ["…" + second[-4:]] and reply["warnings"] == []
    assert json.loads(credentials(host).read_text())["profiles"]["pool"]["keys"] == [second]

    reply = api.save("pool", keys=[good])
    assert hints(reply) == ["…" + good[-4:]]
    assert stat.S_IMODE(credentials(host).stat().st_mode) == 0o600

    stale = api.save("pool", remove_key_ids=["k" + "0" * 20])  # a stale dialog: nothing removed, told so
    assert hints(stale) == ["…" + good[-4:]]
    assert stale["warnings"] == [f"Profile 'pool' has no key with id k{'0' * 20}: the settings were out of "
                                 "date; they show the keys now stored."]


def test_keys_with_the_same_last_four_are_told_apart_by_id(api, host):
    a, b = "a" * 28 + "beef", "c" * 28 + "beef"
    api.secrets += [a, b]
    api.save("twins", keys=[a])
    reply = api.save("twins", add_keys=[b])
    ids = [k["id"] for k in reply["profile"]["keys"]]
    assert len(set(ids)) == 2 and hints(reply) == ["…beef", "…beef"]
    api.save("twins", remove_key_ids=[ids[1]])
    assert json.loads(credentials(host).read_text())["profiles"]["twins"]["keys"] == [a]


def test_site_choices(api, host, sim, keys):
    """A key is bound to the site it was entered for: the site of a profile holding keys
    changes only together with a new pool; a custom address only where the owner allowed it
    (here RUNNINGHUB_BASE_URL)."""
    api.save("siteful", add_keys=[keys["good"]])
    refused = error_of(api.post("/runninghub/profiles/siteful", json={"site": "ai"}), 400)
    assert "holds 1 key(s) entered for www.runninghub.cn" in refused and "Replace keys" in refused
    assert api.save("siteful", site="ai", keys=[keys["good"]])["profile"]["host"] == "www.runninghub.ai"
    custom = api.save("siteful", site="custom", base_url=sim.base_url + "/", keys=[keys["second"]])["profile"]
    assert (custom["site"], custom["base_url"], custom["host"]) == ("custom", sim.base_url,
                                                                    sim.base_url.split("//")[1])
    not_allowed = error_of(api.post("/runninghub/profiles/other", json={"site": "custom",
                                                                         "base_url": "http://127.0.0.1:9/"}), 400)
    assert "RUNNINGHUB_ALLOWED_BASE_URLS=http://127.0.0.1:9" in not_allowed
    api.save("siteful", remove_key_ids=[custom["keys"][0]["id"]])
    back = api.save("siteful", site="cn")["profile"]  # no keys left: the site may change
    assert (back["site"], back["base_url"], back["keys"]) == ("cn", None, [])
    stored = json.loads(credentials(host).read_text())["profiles"]["siteful"]
    assert (stored["site"], stored.get("base_url")) == ("cn", None)


def test_a_key_that_is_not_32_hex_is_kept_with_a_warning(api):
    odd = "sk-live-0123456789-abcdefXYZ"
    api.secrets.append(odd)
    reply = api.save("odd", add_keys=[odd])
    assert hints(reply) == ["…" + odd[-4:]]
    assert reply["warnings"] == [f"Key …{odd[-4:]} does not look like a RunningHub key (32 hexadecimal "
                                 "characters); use Test to check it."]


@pytest.mark.parametrize("path, body, expected", [
    ("/runninghub/profiles/default", {"site": "moon"}, "'site' must be one of cn, ai, custom"),
    ("/runninghub/profiles/default", {"site": "custom"}, "A custom site needs 'base_url'"),
    ("/runninghub/profiles/default", {"site": "custom", "base_url": "ftp://x"}, "must be http(s)://host[:port]"),
    ("/runninghub/profiles/default", {"site": "custom", "base_url": "https://me:s3cr3t-pw@relay.example"},
     "must not hold a user name or password (user:password@); got https://…@relay.example"),
    ("/runninghub/profiles/default", {"site": "cn", "base_url": "http://x"}, "'base_url' goes with site 'custom'"),
    ("/runninghub/profiles/default", {}, "Nothing to change"),
    ("/runninghub/profiles/default", {"apiKey": "x"}, "Unknown field(s) apiKey"),
    ("/runninghub/profiles/default", {"add_keys": "too short"}, "is not a key"),
    ("/runninghub/profiles/default", {"add_keys": [12345678901]}, "'add_keys' must be a list of keys"),
    ("/runninghub/profiles/default", {"keys": ["k" * 32] * 51}, "At most 50 keys"),
    ("/runninghub/profiles/default", {"keys": ["a" * 32], "add_keys": ["b" * 32]}, "not both"),
    ("/runninghub/profiles/default", {"remove_key_ids": "beef"}, "'remove_key_ids' must be a list of key ids"),
    ("/runninghub/profiles/default", {"remove_keys": ["…beef"]}, "Unknown field(s) remove_keys"),
    ("/runninghub/profiles/bad%2Fname", {"site": "cn"}, "Invalid profile name"),
    ("/runninghub/profiles/%20", {"site": "cn"}, "Invalid profile name"),
    ("/runninghub/profiles/" + "p" * 65, {"site": "cn"}, "Invalid profile name"),
])
def test_bad_profile_input_is_refused(api, host, path, body, expected):
    message = error_of(api.post(path, json=body), 400)
    assert expected in message
    assert not credentials(host).exists(), "nothing is written for a refused request"


def test_bad_request_bodies(api):
    assert "not valid JSON" in error_of(api.post("/runninghub/profiles/default", data=b"{nope",
                                                 headers={"Content-Type": "application/json"}), 400)
    assert "must be a JSON object" in error_of(api.post("/runninghub/profiles/default", json=["x"]), 400)
    big = {"keys": ["a" * 200] * 2000}
    assert "too large" in error_of(api.post("/runninghub/profiles/default", json=big), 400)


def test_a_refused_key_is_never_echoed(api, keys):
    typo = keys["good"][:16] + " " + keys["good"][16:]  # a pasted key with a space in it
    message = error_of(api.post("/runninghub/profiles/default", json={"add_keys": [typo]}), 400)
    assert keys["good"][:16] not in message and keys["good"][16:] not in message
    assert "…" in message


def test_delete_profile(api, host, keys):
    api.save("gone", add_keys=[keys["good"]])
    api.save("kept", add_keys=[keys["second"]])
    assert api.delete("/runninghub/profiles/gone").json() == {"deleted": "gone"}
    assert [p["name"] for p in api.get("/runninghub/profiles").json()["profiles"]] == ["kept"]
    assert "no profile 'gone'" in error_of(api.delete("/runninghub/profiles/gone"), 404)
    assert stat.S_IMODE(credentials(host).stat().st_mode) == 0o600


def test_profiles_are_listed_default_first(api, keys):
    for name in ("zeta", "alpha", "default"):
        api.save(name, add_keys=[keys["good"]])
    assert [p["name"] for p in api.get("/runninghub/profiles").json()["profiles"]] == ["default", "alpha", "zeta"]


def test_a_damaged_credentials_file_gives_an_actionable_error(api, host):
    path = credentials(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    message = error_of(api.get("/runninghub/profiles"), 409)
    assert "not valid JSON" in message and "fix or delete it and add the key again" in message


# --------------------------------------------------------------------------- account test


def test_account_test_reports_coins_tasks_currency_and_site(api, sim, keys):
    sim.configure(keys={keys["good"]: {"coins": 4321}})
    key_id = api.save("default", add_keys=[keys["good"]])["profile"]["keys"][0]["id"]
    resp = api.post("/runninghub/profiles/default/test")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == {
        "ok": True, "profile": "default", "source": "credentials file", "site": "custom",
        "host": sim.base_url.split("//")[1], "base_url": sim.base_url,
        "keys": [{"key": "…" + keys["good"][-4:], "id": key_id, "ok": True, "coins": 4321.0, "running_tasks": 0,
                  "money": None, "currency": "CNY", "api_type": "NORMAL"}],
    }
    assert sim.count("accountStatus", keys["good"]) == 1


def test_account_test_of_a_pool_reports_each_key(api, sim, keys):
    api.save("pool", keys=[keys["good"]])
    api.save("pool", add_keys=[keys["foreign"]])
    body = api.post("/runninghub/profiles/pool/test").json()
    assert body["ok"] is False
    good, foreign = body["keys"]
    assert good["ok"] is True and good["key"] == "…" + keys["good"][-4:]
    assert foreign["ok"] is False and foreign["key"] == "…" + keys["foreign"][-4:]
    assert foreign["error_type"] == "AuthError" and foreign["code"] == 806
    assert "refused the key …" + keys["foreign"][-4:] in foreign["error"]
    assert "RUNNINGHUB_BASE_URL" in foreign["error"]  # what to check, for a custom base URL


def test_account_test_of_an_unknown_profile(api):
    message = error_of(api.post("/runninghub/profiles/nobody/test"), 404)
    assert "The account profile 'nobody' does not exist" in message


def test_account_test_has_a_deadline(api, sim, keys):
    api.save("default", add_keys=[keys["good"]])
    sim.fault("accountStatus", "delay", count=4, seconds=ROUTE_TIMEOUT + 3)
    started = time.monotonic()
    body = api.post("/runninghub/profiles/default/test").json()
    took = time.monotonic() - started
    assert body["ok"] is False
    assert body["keys"][0]["error"] == f"RunningHub did not answer within {ROUTE_TIMEOUT:g} s; check the " \
                                       "connection and the site, then try again."
    assert took < ROUTE_TIMEOUT + 2.5, took


def test_environment_key_is_shown_redacted_and_testable(comfy_host_factory, sim, keys):
    env_host = comfy_host_factory(env={"RUNNINGHUB_BASE_URL": sim.base_url, "RUNNINGHUB_API_KEY": keys["second"]},
                                  fresh=True, name="routes-env")
    client = RouteClient(env_host, list(keys.values()))
    body = client.get("/runninghub/profiles").json()
    assert body["profiles"] == []
    assert body["environment"]["keys"] == ["…" + keys["second"][-4:]]
    assert body["environment"]["used"] is True
    test = client.post("/runninghub/profiles/default/test").json()
    assert test["ok"] is True and test["source"] == "environment RUNNINGHUB_API_KEY"
    client.save("default", add_keys=[keys["good"]])
    assert client.get("/runninghub/profiles").json()["environment"]["used"] is False
    client.assert_no_leaks()


# --------------------------------------------------------------------------- workflow fields


def test_fields_list_every_overridable_input(api, sim, keys):
    api.save("default", add_keys=[keys["good"]])
    resp = api.get(f"/runninghub/workflows/{SUBGRAPH_WORKFLOW}/fields")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["workflow_id"], body["profile"], body["nodes"]) == (SUBGRAPH_WORKFLOW, "default", 4)
    rows = [(r["nodeId"], r["classType"], r["title"], r["fieldName"], r["value"], r["valueType"])
            for r in body["fields"]]
    assert rows == [  # natural node order; link inputs (57:24.image, 9.images) are not fields
        ("9", "SaveImage", "Save", "filename_prefix", "sub", "str"),
        ("10", "SimNoiseImage", "Noise", "seed", 7, "int"),
        ("10", "SimNoiseImage", "Noise", "strength", 0.5, "float"),
        ("10", "SimNoiseImage", "Noise", "grayscale", False, "bool"),
        ("57:23", "EmptyImage", "Canvas", "width", 64, "int"),
        ("57:23", "EmptyImage", "Canvas", "height", 48, "int"),
        ("57:23", "EmptyImage", "Canvas", "batch_size", 1, "int"),
        ("57:23", "EmptyImage", "Canvas", "color", 0, "int"),
    ]


def test_fields_are_cached_until_refresh(api, sim, keys):
    api.save("default", add_keys=[keys["good"]])
    first = api.get(f"/runninghub/workflows/{INVERT}/fields?refresh=1").json()
    again = api.get(f"/api/runninghub/workflows/{INVERT}/fields?profile=default").json()
    assert first == again
    assert sim.count("getJsonApiFormat") == 1
    api.get(f"/runninghub/workflows/{INVERT}/fields?refresh=1")
    assert sim.count("getJsonApiFormat") == 2


def test_fields_use_the_named_profile(api, sim, keys):
    api.save("default", add_keys=[keys["good"]])
    api.save("other", add_keys=[keys["second"]])
    assert api.get(f"/runninghub/workflows/{INVERT}/fields?profile=other&refresh=1").status_code == 200
    assert sim.count("getJsonApiFormat", keys["second"]) == 1
    assert sim.count("getJsonApiFormat", keys["good"]) == 0


def test_fields_errors(api, sim, keys):
    message = error_of(api.get(f"/runninghub/workflows/{INVERT}/fields"), 409)
    assert "No RunningHub API key is configured" in message
    api.save("default", add_keys=[keys["good"]])
    assert "profile 'ghost' does not exist" in error_of(
        api.get(f"/runninghub/workflows/{INVERT}/fields?profile=ghost"), 409)
    assert "Invalid workflow id" in error_of(api.get("/runninghub/workflows/12%2034/fields"), 400)
    unknown = error_of(api.get("/runninghub/workflows/1999999999999999999/fields"), 404)
    assert "380" in unknown and "Check the workflow id" in unknown
    api.save("default", keys=[keys["foreign"]])
    refused = error_of(api.get(f"/runninghub/workflows/{INVERT}/fields?refresh=1"), 502)
    assert "refused the key …" + keys["foreign"][-4:] in refused


def test_fields_have_a_deadline(api, sim, keys):
    api.save("default", add_keys=[keys["good"]])
    sim.fault("getJsonApiFormat", "delay", count=4, seconds=ROUTE_TIMEOUT + 3)
    started = time.monotonic()
    message = error_of(api.get(f"/runninghub/workflows/{WORKFLOWS['scale']}/fields?refresh=1"), 504)
    assert f"did not answer within {ROUTE_TIMEOUT:g} s" in message
    assert time.monotonic() - started < ROUTE_TIMEOUT + 2.5


# --------------------------------------------------------------------------- override check


def test_check_names_each_bad_entry(api, keys):
    api.save("default", add_keys=[keys["good"]])
    entries = [
        {"nodeId": "10", "fieldName": "seed", "value": "42", "text": True},
        {"nodeId": "57:23", "fieldName": "width", "value": 128},
        {"nodeId": "11", "fieldName": "seed"},
        {"nodeId": "10", "fieldName": "sed"},
        {"nodeId": "10", "fieldName": "seed", "value": "forty", "text": True},
        {"nodeId": "", "fieldName": "seed"},
        {"nodeId": "10", "fieldName": " "},
        {"nodeId": "10", "fieldName": "grayscale", "value": {"a": 1}},
    ]
    resp = api.post(f"/runninghub/workflows/{SUBGRAPH_WORKFLOW}/check", json={"overrides": entries})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["ok"], body["checked"]) == (False, 8)
    reasons = {b["index"]: b["reason"] for b in body["bad"]}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert reasons[2] == "no node with this id"
    assert reasons[3] == "node 10 (SimNoiseImage) has no field 'sed'; its fields: grayscale, seed, strength"
    assert reasons[4] == "'forty' is not a whole number (the remote field holds 7)"
    assert reasons[5] == "node_id is empty"
    assert reasons[6] == "field_name is empty"
    assert reasons[7] == "the value must be a number, text or a boolean"
    first, second = body["entries"][:2]
    assert first == {"index": 0, "nodeId": "10", "fieldName": "seed", "ok": True, "reason": None,
                     "classType": "SimNoiseImage", "title": "Noise", "valueType": "int"}
    assert (second["ok"], second["title"], second["valueType"]) == (True, "Canvas", "int")


def test_check_of_good_entries(api, keys):
    api.save("default", add_keys=[keys["good"]])
    body = api.post(f"/runninghub/workflows/{INVERT}/check",
                    json={"profile": "default", "overrides": [{"nodeId": "1", "fieldName": "image",
                                                               "value": "api/x.png", "text": True}]}).json()
    assert (body["ok"], body["bad"]) == (True, [])


@pytest.mark.parametrize("body, expected", [
    ({"overrides": "3.seed"}, "'overrides' must be a list"),
    ({"overrides": [["3", "seed"]]}, "'overrides' must be a list"),
    ({"overrides": [{"nodeId": "1", "fieldName": "image"}] * 501}, "At most 500 overrides"),
    ({"overrides": [], "profile": 3}, "'profile' must be a profile name"),
    ({"overrides": [], "apiKey": "x"}, "Unknown field(s) apiKey"),
])
def test_check_refuses_bad_input(api, keys, body, expected):
    api.save("default", add_keys=[keys["good"]])
    assert expected in error_of(api.post(f"/runninghub/workflows/{INVERT}/check", json=body), 400)


def test_routes_are_registered_once(host):
    """register_routes adds each route once however often it is called (the extension calls
    it from on_load and, for ComfyUI 0.3.75 which never calls on_load, from get_node_list),
    does nothing without a server, and never patches a server that has started."""
    from aiohttp import web

    from support.pack import pack_module

    routes = pack_module("host.routes")

    class Server:
        def __init__(self, started: bool = False):
            self.routes = web.RouteTableDef()
            self.app = web.Application()
            if started:
                self.app.router.freeze()

    server = Server()
    assert routes.register_routes(server) is True
    assert routes.register_routes(server) is True
    assert sorted((r.method, r.path) for r in server.routes) == sorted((m, p) for m, p, _ in routes.ROUTES)
    table = [(m, p) for m, p, _ in routes.ROUTES]  # the task panel adds its routes to the same table
    assert len(set(table)) == len(table) and ("POST", "/runninghub/profiles/{name}") in table

    late = Server(started=True)
    assert routes.register_routes(late) is False
    assert list(late.routes) == []

    assert routes.register_routes() is False  # this test process runs no ComfyUI server

    for path in ("/runninghub/profiles", "/api/runninghub/profiles"):
        assert requests.get(host.base_url + path, timeout=30).status_code == 200
    assert "RunningHub routes not registered" not in host.log_text()
