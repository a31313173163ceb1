"""Every fault kind, and the request counters that let a test assert "exactly one create"."""

from __future__ import annotations

import json
import time

import pytest
import requests

from support.simulator import SimulatorError


def _download_partial(url: str) -> tuple[int, int]:
    """(declared length, bytes received) of a download that may break off."""
    received = 0
    with requests.get(url, stream=True, timeout=5) as reply:
        declared = int(reply.headers["Content-Length"])
        with pytest.raises(requests.exceptions.RequestException):
            for chunk in reply.iter_content(256):
                received += len(chunk)
    return declared, received


def test_counts_per_endpoint_and_key(api, sim):
    sim.reset_counts()
    task_id = api.task_id("empty")
    api.wait(task_id)
    api.create("empty", key=sim.keys[1])
    counts = sim.counts()
    assert counts["endpoints"]["create"] == 2
    assert counts["endpoints"]["outputs"] >= 1
    assert counts["keys"][sim.redacted(api.key)]["create"] == 1
    assert counts["keys"][sim.redacted(sim.keys[1])]["create"] == 1
    assert sim.count("create", api.key) == 1
    assert counts["total"] == sum(counts["endpoints"].values())
    sim.reset_counts()
    assert sim.counts()["endpoints"] == {}


def test_hooks_are_not_counted(api, sim):
    sim.reset_counts()
    sim.tasks()
    sim.config()
    assert sim.counts()["total"] == 0


def test_http_error_with_retry_after(api, sim):
    sim.fault("create", "http_error", status=503, retry_after=7)
    reply = api.raw("create", {"apiKey": api.key, "workflowId": "1980000000000000003"})
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "7"
    assert "text/html" in reply.headers["Content-Type"]
    assert sim.tasks() == []
    assert api.create("empty")["code"] == 0
    assert sim.count("create") == 2


def test_http_500_is_a_spring_error_json(api, sim):
    sim.fault("outputs", "http_error", status=500)
    reply = api.raw("outputs", {"apiKey": api.key, "taskId": "1"})
    assert reply.status_code == 500 and reply.json()["status"] == 500
    assert "Retry-After" not in reply.headers


def test_fault_count_and_any_endpoint(api, sim):
    sim.fault("*", "http_error", count=2, status=502)
    assert api.raw("status", {"apiKey": api.key, "taskId": "1"}).status_code == 502
    assert api.raw("accountStatus", {"apikey": api.key}).status_code == 502
    assert api.raw("accountStatus", {"apikey": api.key}).status_code == 200


def test_reset_before_creates_nothing(api, sim):
    sim.fault("create", "reset_before")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.raw("create", {"apiKey": api.key, "workflowId": "1980000000000000003"})
    assert sim.tasks() == []
    assert sim.count("create") == 1


def test_reset_after_commit_creates_and_bills(api, sim):
    sim.fault("create", "reset_after_commit")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.raw("create", {"apiKey": api.key, "workflowId": "1980000000000000003"})
    (task,) = sim.tasks()
    assert sim.count("create") == 1
    sim.wait_for(lambda: sim.tasks()[0]["status"] == "SUCCESS")
    coins = api.call("accountStatus", {"apikey": api.key})["data"]["remainCoins"]
    assert int(coins) == 100_000 - sim.tasks()[0]["consumeCoins"] < 100_000


def test_reset_mid_body_on_download(api, sim):
    (item,) = api.run("noise")["data"]
    sim.fault("files", "reset_mid_body", fraction=0.5)
    declared, received = _download_partial(item["fileUrl"])
    assert 0 < received < declared
    assert len(api.download(item["fileUrl"]).content) == declared


def test_reset_mid_body_on_json(api, sim):
    sim.fault("accountStatus", "reset_mid_body", bytes=10)
    with pytest.raises(requests.exceptions.RequestException):
        api.raw("accountStatus", {"apikey": api.key}).json()


def test_slow_body(api, sim):
    (item,) = api.run("noise")["data"]
    full = api.download(item["fileUrl"]).content
    sim.fault("files", "slow_body", chunk=len(full) // 4 + 1, delay=0.1)
    started = time.monotonic()
    slow = api.download(item["fileUrl"]).content
    assert time.monotonic() - started >= 0.3
    assert slow == full


def test_delay(api, sim):
    sim.fault("status", "delay", seconds=0.3)
    started = time.monotonic()
    assert api.call("status", {"apiKey": api.key, "taskId": "1"})["code"] == 807
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.exceptions.Timeout):
        sim.fault("status", "delay", seconds=1.0)
        api.raw("status", {"apiKey": api.key, "taskId": "1"}, timeout=0.3)


def test_malformed_json(api, sim):
    sim.fault("outputs", "malformed_json")
    reply = api.raw("outputs", {"apiKey": api.key, "taskId": "1"})
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(reply.text)


def test_malformed_json_with_commit_creates(api, sim):
    sim.fault("create", "malformed_json", commit=True)
    reply = api.raw("create", {"apiKey": api.key, "workflowId": "1980000000000000003"})
    with pytest.raises(ValueError):
        reply.json()
    assert len(sim.tasks()) == 1


def test_html_502(api, sim):
    sim.fault("status", "html_502")
    reply = api.raw("status", {"apiKey": api.key, "taskId": "1"})
    assert reply.status_code == 502 and reply.headers["Content-Type"].startswith("text/html")
    assert "<html>" in reply.text and "502 Bad Gateway" in reply.text


def test_html_200(api, sim):
    sim.fault("upload", "html_200")
    reply = api.raw("upload", None, files={"file": ("a.png", b"\x89PNG")}, data={"apiKey": api.key, "fileType": "image"})
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        reply.json()


def test_expired_fault_and_expire_hook_and_ttl(api, sim):
    (item,) = api.run("noise")["data"]
    sim.fault("files", "expired")
    assert requests.get(item["fileUrl"], timeout=5).status_code == 404
    assert requests.get(item["fileUrl"], timeout=5).status_code == 200
    task_id = sim.tasks()[-1]["taskId"]
    sim.expire_outputs(task_id)
    assert requests.get(item["fileUrl"], timeout=5).status_code == 404
    sim.configure(url_ttl_seconds=0.2)
    (fresh,) = api.run("noise")["data"]
    assert requests.get(fresh["fileUrl"], timeout=5).status_code == 200
    time.sleep(0.25)
    assert requests.get(fresh["fileUrl"], timeout=5).status_code == 404


def test_files_are_counted(api, sim):
    (item,) = api.run("noise")["data"]
    sim.reset_counts()
    api.download(item["fileUrl"])
    assert sim.count("files") == 1


def test_fault_hook_rejects_unknown_kinds_and_endpoints(sim):
    with pytest.raises(SimulatorError):
        sim.fault("create", "gremlins")
    with pytest.raises(SimulatorError):
        sim.fault("/nowhere", "http_error")
    armed = sim.fault("/task/openapi/create", "http_error", count=3)
    assert armed["endpoint"] == "create" and armed["remaining"] == 3
    sim.clear_faults()


def test_config_hook_rejects_unknown_settings(sim):
    with pytest.raises(SimulatorError):
        sim.configure(warp_speed=9)
    with pytest.raises(SimulatorError):
        sim.configure(legacy="yes")


@pytest.mark.parametrize("code, msg", [(415, "TASK_INSTANCE_MAXED"), (435, "TASK_USER_EXCLAPI_INSTANCE_NOT_FOUND"),
                                       (810, "WORKFLOW_NOT_SAVED_OR_NOT_RUNNING"), (500, "UNKNOWN_ERROR")])
def test_api_error_fault_answers_any_business_code(api, sim, code, msg):
    sim.fault("create", "api_error", code=code, msg=msg)
    assert api.create("empty") == {"code": code, "msg": msg, "data": None}
    assert sim.tasks() == []
    assert api.create("empty")["code"] == 0


def test_api_error_fault_default_msg_and_data(api, sim):
    sim.fault("outputs", "api_error", code=808, data={"why": "storage"})
    assert api.outputs("1") == {"code": 808, "msg": "APIKEY_UPLOAD_FAILED", "data": {"why": "storage"}}
    with pytest.raises(SimulatorError):
        sim.fault("create", "api_error")


def test_download_resumes_with_range(api, sim):
    (item,) = api.run("noise")["data"]
    full = api.download(item["fileUrl"]).content
    assert api.download(item["fileUrl"]).headers["Accept-Ranges"] == "bytes"
    part = requests.get(item["fileUrl"], headers={"Range": "bytes=100-"}, timeout=5)
    assert part.status_code == 206 and part.content == full[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(full) - 1}/{len(full)}"
    tail = requests.get(item["fileUrl"], headers={"Range": "bytes=-10"}, timeout=5)
    assert tail.status_code == 206 and tail.content == full[-10:]
    past = requests.get(item["fileUrl"], headers={"Range": f"bytes={len(full)}-"}, timeout=5)
    assert past.status_code == 416


def test_http_error_with_commit_creates_the_task(api, sim):
    sim.fault("create", "http_error", status=504, commit=True)
    reply = api.raw("create", {"apiKey": api.key, "workflowId": "1980000000000000003"})
    assert reply.status_code == 504
    assert len(sim.tasks()) == 1


def test_client_timeout_on_a_delayed_create_still_creates(api, sim):
    sim.fault("create", "delay", seconds=0.6)
    with pytest.raises(requests.exceptions.Timeout):
        api.raw("create", {"apiKey": api.key, "workflowId": "1980000000000000003"}, timeout=0.2)
    assert len(sim.tasks()) == 1
