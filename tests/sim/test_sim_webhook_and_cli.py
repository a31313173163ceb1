"""Webhook delivery and retries; the command line and its log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from support.simulator import DEFAULT_WORKFLOWS, REPO_ROOT, WORKFLOWS, Simulator, random_keys


class Receiver:
    """A webhook receiver on loopback; `behaviour` is a list of per-attempt actions:
    "ok", "fail" (HTTP 500) or "slow" (answers after `slow_seconds`)."""

    def __init__(self, behaviour=("ok",), slow_seconds=1.0):
        self.behaviour = list(behaviour)
        self.slow_seconds = slow_seconds
        self.events: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.events.append(json.loads(body))
                action = receiver.behaviour.pop(0) if receiver.behaviour else "ok"
                if action == "slow":
                    time.sleep(receiver.slow_seconds)
                status = 500 if action == "fail" else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(*args, **kw):
        made.append(Receiver(*args, **kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _detail(api, task_id):
    return api.call("getWebhookDetail", {"apiKey": api.key, "taskId": task_id})


def test_webhook_event_shape(api, sim, receiver_factory):
    receiver = receiver_factory()
    task_id = api.task_id("empty", webhookUrl=receiver.url)
    sim.wait_for(lambda: receiver.events)
    (event,) = receiver.events
    assert set(event) == {"event", "taskId", "eventData"}
    assert event["event"] == "TASK_END" and event["taskId"] == task_id
    data = json.loads(event["eventData"])
    assert data["code"] == 0 and len(data["data"]) == 2
    assert isinstance(data["data"][0]["taskCostTime"], int)
    assert data["data"] == [{**item, "taskCostTime": int(item["taskCostTime"])} for item in api.outputs(task_id)["data"]]
    detail = sim.wait_for(lambda: (d := _detail(api, task_id)["data"])["callbackStatus"] == "SUCCESS" and d)
    assert detail["retryCount"] == 0 and detail["webhookUrl"] == receiver.url


def test_webhook_on_failure_carries_805(api, sim, receiver_factory):
    receiver = receiver_factory()
    api.task_id("fail", webhookUrl=receiver.url)
    sim.wait_for(lambda: receiver.events)
    assert json.loads(receiver.events[0]["eventData"])["code"] == 805


def test_webhook_on_cancel_carries_805(api, sim, receiver_factory):
    sim.configure(run_seconds=5)
    receiver = receiver_factory()
    task_id = api.task_id("empty", webhookUrl=receiver.url)
    api.call("cancel", {"apiKey": api.key, "taskId": task_id})
    sim.wait_for(lambda: receiver.events)
    data = json.loads(receiver.events[0]["eventData"])
    assert data["code"] == 805 and data["data"]["failedReason"]["exception_type"].endswith("InterruptProcessingException")


def test_webhook_retries_failing_and_slow_receivers(api, sim, receiver_factory):
    sim.configure(webhook_retry_seconds=0.05, webhook_timeout_seconds=0.3)
    receiver = receiver_factory(["fail", "slow", "ok"], slow_seconds=0.6)
    task_id = api.task_id("empty", webhookUrl=receiver.url)
    detail = sim.wait_for(lambda: (d := _detail(api, task_id)["data"])["callbackStatus"] == "SUCCESS" and d)
    assert detail["retryCount"] == 2 and len(receiver.events) == 3
    assert len(detail["attempts"]) == 3


def test_webhook_gives_up_after_three_retries(api, sim, receiver_factory):
    sim.configure(webhook_retry_seconds=0.02)
    receiver = receiver_factory(["fail"] * 10)
    task_id = api.task_id("empty", webhookUrl=receiver.url)
    detail = sim.wait_for(lambda: (d := _detail(api, task_id)["data"])["callbackStatus"] == "FAILED" and d)
    assert detail["retryCount"] == 3 and len(receiver.events) == 4


def test_webhook_to_a_remote_host_is_never_called(api, sim):
    task_id = api.task_id("empty", webhookUrl="http://192.0.2.1/hook")
    detail = sim.wait_for(lambda: (d := _detail(api, task_id)["data"])["callbackStatus"] == "FAILED" and d)
    assert "loopback" in detail["attempts"][0]["error"]


def test_no_webhook_detail_is_null(api):
    task_id = api.task_id("empty")
    assert _detail(api, task_id) == {"code": 0, "msg": "success", "data": None}


def test_cli_line_log_and_key_redaction():
    keys = random_keys(2)
    with Simulator(keys=keys, extra_args=["--queue-depth", "3", "--max-upload-mb", "5"]) as sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.base_url)
        requests.post(sim.base_url + "/task/openapi/create",
                      json={"apiKey": keys[0], "workflowId": WORKFLOWS["empty"]}, timeout=5)
        requests.post(sim.base_url + "/task/openapi/create", json={"apiKey": "9" * 32, "workflowId": "1"},
                      timeout=5)
        settings = sim.config()["settings"]
        assert settings["queue_depth"] == 3 and settings["max_upload_mb"] == 5
        assert [a["key"] for a in sim.config()["accounts"]] == [sim.redacted(k) for k in keys]
        log = sim.log_text()
    assert "\u2026" + keys[0][-4:] in log and "create" in log
    for key in keys + ["9" * 32]:
        assert key not in log


@pytest.mark.parametrize("public_host", [None, "localhost"])
def test_bound_to_every_interface_replies_carry_a_reachable_host(public_host):
    """Bound to 0.0.0.0 (a simulator other machines or containers reach), the URLs replies
    carry name `--public-host`, else 127.0.0.1: never the unspecified 0.0.0.0."""
    extra = ["--host", "0.0.0.0", "--run-seconds", "3"] + (["--public-host", public_host] if public_host else [])
    with Simulator(extra_args=extra) as sim:
        shown = public_host or "127.0.0.1"
        assert urlsplit(sim.base_url).hostname == shown
        data = requests.post(sim.base_url + "/task/openapi/create", timeout=10,
                             json={"apiKey": sim.keys[0], "workflowId": WORKFLOWS["empty"]}).json()["data"]
        assert urlsplit(data["netWssUrl"]).hostname == shown
        assert sim.wait_for(lambda: sim.task(data["taskId"])["status"] == "SUCCESS", timeout=20)
        items = requests.post(sim.base_url + "/task/openapi/outputs", timeout=10,
                              json={"apiKey": sim.keys[0], "taskId": data["taskId"]}).json()["data"]
        assert {urlsplit(i["fileUrl"]).hostname for i in items} == {shown}
        assert requests.get(items[0]["fileUrl"], timeout=10).content[:4] == b"\x89PNG"


def test_cli_prints_exactly_one_line_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "rhsim", "--port", "0", "--workflows", str(DEFAULT_WORKFLOWS),
                             "--key", random_keys(1)[0]], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline().decode()
        assert re.fullmatch(r"rhsim listening on http://127\.0\.0\.1:\d+\n", line)
        proc.terminate()
        assert proc.wait(10) == 0
        assert proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_a_missing_workflows_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rhsim", "--workflows", str(tmp_path / "nope"), "--key", "k"],
                            cwd=REPO_ROOT, capture_output=True, timeout=30)
    assert result.returncode == 2 and result.stdout == b""


def test_workflows_added_while_running_are_found(tmp_path):
    (tmp_path / "1111111111111111111.json").write_text((DEFAULT_WORKFLOWS / f"{WORKFLOWS['empty']}.json").read_text())
    with Simulator(workflows_dir=tmp_path) as sim:
        body = {"apiKey": sim.keys[0], "workflowId": "2222222222222222222"}
        assert requests.post(sim.base_url + "/task/openapi/create", json=body, timeout=5).json()["code"] == 380
        (tmp_path / "2222222222222222222.json").write_text((tmp_path / "1111111111111111111.json").read_text())
        assert requests.post(sim.base_url + "/task/openapi/create", json=body, timeout=5).json()["code"] == 0
