"""A client written from shared/runninghub-api.md alone, with raw requests: the conformance
tests' own view of the protocol (deliberately not sharing the simulator's or the pack's code)."""

from __future__ import annotations

import io
import json
import time

import requests

from support.simulator import WORKFLOWS, Simulator

V1 = {
    "create": "/task/openapi/create",
    "ai-app/run": "/task/openapi/ai-app/run",
    "outputs": "/task/openapi/outputs",
    "status": "/task/openapi/status",
    "cancel": "/task/openapi/cancel",
    "accountStatus": "/uc/openapi/accountStatus",
    "upload": "/task/openapi/upload",
    "getJsonApiFormat": "/api/openapi/getJsonApiFormat",
    "getWebhookDetail": "/task/openapi/getWebhookDetail",
}


class Api:
    """The few lines a client needs, kept deliberately plain."""

    def __init__(self, sim: Simulator, key: str | None = None):
        self.sim = sim
        self.base = sim.base_url
        self.key = key or sim.keys[0]

    def raw(self, endpoint: str, body: dict | None = None, timeout: float = 10, **kw) -> requests.Response:
        path = V1.get(endpoint, endpoint)
        return requests.post(self.base + path, json=body, timeout=timeout, **kw)

    def call(self, endpoint: str, body: dict | None = None, **kw) -> dict:
        reply = self.raw(endpoint, body, **kw)
        assert reply.status_code == 200, reply.text
        assert reply.headers["Content-Type"].startswith("application/json")
        return reply.json()

    def create(self, wf: str, overrides=None, key: str | None = None, **extra) -> dict:
        body = {"apiKey": key or self.key, "workflowId": WORKFLOWS.get(wf, wf)}
        if overrides is not None:
            body["nodeInfoList"] = [
                {"nodeId": n, "fieldName": f, "fieldValue": v} for n, f, v in overrides
            ]
        body.update(extra)
        return self.call("create", body)

    def task_id(self, wf: str, overrides=None, **extra) -> str:
        reply = self.create(wf, overrides, **extra)
        assert reply["code"] == 0, reply
        return reply["data"]["taskId"]

    def outputs(self, task_id: str, key: str | None = None) -> dict:
        return self.call("outputs", {"apiKey": key or self.key, "taskId": task_id})

    def status(self, task_id: str, key: str | None = None) -> dict:
        return self.call("status", {"apiKey": key or self.key, "taskId": task_id})

    def wait(self, task_id: str, timeout: float = 15.0) -> dict:
        """Polls outputs until the task is no longer queued or running."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.outputs(task_id)
            still = reply["code"] in (804, 813) or (reply["code"] == 0 and reply["data"] is None)
            if not still:
                return reply
            assert time.monotonic() < deadline, f"task {task_id} still {reply}"
            time.sleep(0.02)

    def run(self, wf: str, overrides=None, **extra) -> dict:
        reply = self.wait(self.task_id(wf, overrides, **extra))
        assert reply["code"] == 0, reply
        return reply

    def upload(self, data: bytes, filename: str, file_type: str = "image", key: str | None = None) -> dict:
        return self.call("upload", None, files={"file": (filename, io.BytesIO(data))},
                         data={"apiKey": key or self.key, "fileType": file_type})

    def download(self, url: str) -> requests.Response:
        reply = requests.get(url, timeout=10)
        assert reply.status_code == 200, reply.status_code
        return reply


def prompt_tips(reply: dict) -> dict:
    return json.loads(reply["data"]["promptTips"])
