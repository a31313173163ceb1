"""The ComfyUI executor: the overridden graph runs on a real ComfyUI server.

Uses ComfyUI's documented HTTP API only:
- `POST /upload/image` (multipart `image`, `subfolder`, `type=input`, `overwrite=true`) for every
  input file the graph references (uploads `api/<sha>.<ext>` and sample inputs), any media type;
- `POST /prompt {prompt, client_id, prompt_id}`: HTTP 400 `{error, node_errors}` -> 433;
- `GET /history/<prompt_id>` until it appears: `status.status_str` "success" or "error"
  (`execution_error` / `execution_interrupted` messages -> 805 failedReason);
- `GET /view?filename=&subfolder=&type=output` for every file in `outputs` (temp files, i.e.
  PreviewImage, are not API outputs on RunningHub);
- `POST /queue {delete: [id]}` and `POST /interrupt {prompt_id}` on cancel;
- `GET /object_info` (once) to know which nodes are output nodes for promptTips;
- `GET /ws?clientId=<the task's clientId>`, opened before `/prompt`: the prompt's messages are
  relayed to the task's own socket (relay.py).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import PurePosixPath

from ..protocol import UNKNOWN_ERROR, ApiError
from .base import Cancelled, Executor, NodeFailure, OutputFile, PromptInvalid, RunContext, failed_reason
from .relay import PromptRelay

log = logging.getLogger("rhsim.executor.comfyui")

FILE_INPUT_NAMES = ("image", "audio", "file", "video")


class ComfyUIError(Exception):
    pass


class ComfyUIExecutor(Executor):
    name = "comfyui"

    def __init__(self, base_url: str, storage, *, poll_seconds: float = 0.2, timeout_seconds: float = 3600.0):
        self.base_url = base_url.rstrip("/")
        self.storage = storage
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self._output_nodes: set[str] | None = None

    # ------------------------------------------------------------------ HTTP
    def exchange(self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 30.0) -> tuple[int, dict, bytes]:
        """One request to ComfyUI: (status, reply headers, body); ComfyUIError when unreachable."""
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as reply:
                return reply.status, dict(reply.headers.items()), reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ComfyUIError(f"ComfyUI at {self.base_url} unreachable: {exc}") from exc

    def _request(self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 30.0) -> tuple[int, bytes]:
        status, _headers, data = self.exchange(method, path, body=body, headers=headers, timeout=timeout)
        return status, data

    def json_call(self, method: str, path: str, payload=None, timeout: float = 30.0):
        body = None if payload is None else json.dumps(payload).encode()
        status, data = self._request(method, path, body=body, timeout=timeout,
                                     headers={"Content-Type": "application/json"} if body else {})
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    # ------------------------------------------------------------------ inputs
    def _upload(self, local_path, value: str) -> str:
        rel = PurePosixPath(value)
        subfolder = str(rel.parent) if str(rel.parent) != "." else ""
        boundary = "rhsim" + secrets.token_hex(12)
        parts = []
        for name, text in (("subfolder", subfolder), ("type", "input"), ("overwrite", "true")):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{text}\r\n'.encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{rel.name}"\r\n'
                     f'Content-Type: application/octet-stream\r\n\r\n'.encode() + local_path.read_bytes() + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        status, data = self._request("POST", "/upload/image", body=b"".join(parts),
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200:
            raise ComfyUIError(f"upload of {value} to ComfyUI failed: HTTP {status}")
        reply = json.loads(data)
        return f"{reply['subfolder']}/{reply['name']}" if reply.get("subfolder") else reply["name"]

    def _upload_inputs(self, graph: dict, storage) -> dict:
        """Uploads every referenced local input file; returns the graph with ComfyUI's names."""
        graph = json.loads(json.dumps(graph))
        done: dict[str, str] = {}
        for node in graph.values():
            inputs = node.get("inputs", {})
            for name in FILE_INPUT_NAMES:
                value = inputs.get(name)
                if not isinstance(value, str):
                    continue
                path = storage.resolve_input(value)
                if path is None:
                    continue
                if value not in done:
                    done[value] = self._upload(path, value.removesuffix(" [input]"))
                inputs[name] = done[value]
        return graph

    def _outputs_of(self, graph: dict) -> list[str]:
        if self._output_nodes is None:
            try:
                status, info = self.json_call("GET", "/object_info", timeout=60)
                self._output_nodes = {k for k, v in (info or {}).items() if v.get("output_node")} if status == 200 else set()
            except ComfyUIError:
                return []
        return sorted((nid for nid, n in graph.items() if n.get("class_type") in self._output_nodes),
                      key=lambda x: (0, int(x), "") if x.isdigit() else (1, 0, x))

    # ------------------------------------------------------------------ submit
    def submit(self, graph, task_id, client_id, storage=None):
        prompt_id = str(uuid.uuid4())
        relay = PromptRelay(self.ws_url(client_id), prompt_id, timeout_seconds=self.timeout_seconds)
        relay.start()
        try:
            remote_graph = self._upload_inputs(graph, storage or self.storage)
            status, reply = self.json_call("POST", "/prompt", {"prompt": remote_graph, "client_id": client_id,
                                                               "prompt_id": prompt_id})
        except ComfyUIError as exc:
            relay.stop()
            log.error("task %s: %s", task_id, exc)
            raise ApiError(UNKNOWN_ERROR, "UNKNOWN_ERROR: the execution backend is unreachable") from exc
        if status != 200:
            relay.stop()
        if status == 400 and isinstance(reply, dict):
            raise PromptInvalid({"result": False, "error": reply.get("error"), "outputs_to_execute": [],
                                 "node_errors": reply.get("node_errors") or {}})
        if status != 200 or not isinstance(reply, dict) or "prompt_id" not in reply:
            log.error("task %s: ComfyUI /prompt answered HTTP %s: %r", task_id, status, reply)
            raise ApiError(UNKNOWN_ERROR, f"UNKNOWN_ERROR: the execution backend answered HTTP {status}")
        tips = {"result": True, "error": None, "outputs_to_execute": self._outputs_of(graph),
                "node_errors": reply.get("node_errors") or {}}
        log.info("task %s is ComfyUI prompt %s", task_id, reply["prompt_id"])
        return tips, {"prompt_id": reply["prompt_id"], "relay": relay}

    def ws_url(self, client_id: str) -> str:
        return self.base_url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"

    # ------------------------------------------------------------------ run
    def run(self, ctx: RunContext) -> list[OutputFile]:
        prompt_id = ctx.state["prompt_id"]
        ctx.state["relay"].attach(ctx.feed)
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            if ctx.cancel_event.is_set():
                raise Cancelled()
            try:
                status, history = self.json_call("GET", f"/history/{prompt_id}", timeout=30)
            except ComfyUIError as exc:
                log.warning("task %s: %s (will retry)", ctx.task_id, exc)
                history = None
            entry = (history or {}).get(prompt_id) if isinstance(history, dict) else None
            if entry and (entry.get("status") or {}).get("completed") is not None:
                return self._finish(ctx, entry)
            if time.monotonic() > deadline:
                raise NodeFailure(failed_reason("", "", "TimeoutError",
                                                f"ComfyUI prompt {prompt_id} did not finish in time"))
            ctx.cancel_event.wait(self.poll_seconds)

    def _finish(self, ctx: RunContext, entry: dict) -> list[OutputFile]:
        _outcome, reason = history_outcome(entry)
        if reason is not None:
            raise NodeFailure(reason)
        files: list[OutputFile] = []
        outputs = entry.get("outputs") or {}
        for node_id in sorted(outputs, key=lambda x: (0, int(x), "") if x.isdigit() else (1, 0, x)):
            for key, items in outputs[node_id].items():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if not isinstance(item, dict) or "filename" not in item or item.get("type") != "output":
                        continue
                    files.append(self._fetch(ctx, node_id, item))
        return files

    def _fetch(self, ctx: RunContext, node_id: str, item: dict) -> OutputFile:
        query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                        "type": "output"})
        status, data = self._request("GET", f"/view?{query}", timeout=120)
        if status != 200:
            raise NodeFailure(failed_reason(node_id, "", "RuntimeError",
                                            f"could not fetch output {item['filename']}: HTTP {status}"))
        name = PurePosixPath(item["filename"]).name
        path = ctx.storage.output_path(ctx.task_id, name)
        if path.exists():
            name = f"{secrets.token_hex(3)}_{name}"
            path = ctx.storage.output_path(ctx.task_id, name)
        path.write_bytes(data)
        text = data.decode("utf-8", "replace") if name.lower().endswith(".txt") else None
        return OutputFile(node_id=node_id, path=path, name=name, text=text)

    # ------------------------------------------------------------------ cancel
    def cancel(self, ctx: RunContext) -> None:
        ctx.cancel_event.set()
        if (ctx.state or {}).get("relay"):
            ctx.state["relay"].stop()
        prompt_id = (ctx.state or {}).get("prompt_id")
        if not prompt_id:
            return
        for path, payload in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
            try:
                self.json_call("POST", path, payload, timeout=10)
            except ComfyUIError as exc:
                log.warning("cancel of ComfyUI prompt %s: %s", prompt_id, exc)


def history_outcome(entry: dict) -> tuple[str, dict | None]:
    """A finished /history entry: ("success", None), ("error", failedReason) or
    ("interrupted", failedReason)."""
    status = entry.get("status") or {}
    for name, data in status.get("messages") or []:
        if name == "execution_error":
            return "error", failed_reason(
                data.get("node_id", ""), data.get("node_type", ""), data.get("exception_type", ""),
                data.get("exception_message", ""), data.get("traceback") or [],
                data.get("current_inputs") or {}, data.get("current_outputs") or [],
            )
        if name == "execution_interrupted":
            return "interrupted", failed_reason(
                data.get("node_id", ""), data.get("node_type", ""),
                "comfy.model_management.InterruptProcessingException", "Processing interrupted", [], {},
                data.get("executed") or [],
            )
    if status.get("status_str") not in (None, "success"):
        return "error", failed_reason("", "", "RuntimeError", f"ComfyUI status {status.get('status_str')}")
    return "success", None


def file_refs(outputs: dict) -> set[tuple[str, str, str]]:
    """Every (type, subfolder, filename) named in a history entry's or an `executed` message's outputs."""
    refs = set()
    for node_output in (outputs or {}).values():
        for items in (node_output or {}).values() if isinstance(node_output, dict) else ():
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    refs.add((item.get("type") or "output", item.get("subfolder") or "", item["filename"]))
    return refs
