"""Runs the RunningHub simulator (`python -m rhsim`) as a subprocess for tests.

    with Simulator(run_seconds=0.2) as sim:
        requests.post(sim.base_url + "/task/openapi/create", json={"apiKey": sim.keys[0], ...})
        assert sim.counts()["endpoints"]["create"] == 1

Hooks (see rhsim/README.md): counts, tasks, runtime config, faults. Keys are random
32-hex strings made per instance; their last four characters are distinct, since hooks
show keys as `…` + last 4 (`Simulator.redacted(key)`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import secret_scan

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKFLOWS = REPO_ROOT / "tests" / "fixtures" / "workflows"
SAMPLE_INPUTS = DEFAULT_WORKFLOWS / "input"

# Names of the sample workflows in DEFAULT_WORKFLOWS (RunningHub ids are 19-digit numbers).
WORKFLOWS = {
    "invert": "1980000000000000001",        # LoadImage(1) -> ImageInvert(2) -> SaveImage(3)
    "scale": "1980000000000000002",         # LoadImage(1) -> ImageScaleBy x2(2) -> SaveImage(3); ImageScale w=24(4) -> SaveImage(5)
    "empty": "1980000000000000003",         # EmptyImage 64x48 batch 2 orange(1) -> SaveImage(2)
    "noise": "1980000000000000004",         # SimNoiseImage seed(1) -> SaveImage(2)
    "audio": "1980000000000000005",         # LoadAudio(1) -> SaveAudio(2) (flac)
    "video": "1980000000000000006",         # LoadVideo(1) -> SaveVideo(2) (mp4)
    "text": "1980000000000000007",          # PrimitiveString(1) -> SaveText(2) (txt)
    "mixed": "1980000000000000008",         # 3 PNG (2 sizes), mp4, flac, txt; plus a PreviewImage
    "fail": "1980000000000000009",          # EmptyImage(1) -> SimFail(2) -> SaveImage(3): FAILED at node 2
    "preview_only": "1980000000000000010",  # EmptyImage -> PreviewImage: SUCCESS with no outputs
    "unsupported": "1980000000000000011",   # holds a CheckpointLoaderSimple: 433 on create
    "mask": "1980000000000000012",          # LoadImage(1) -> MaskToImage(mask 1-alpha)(2) -> SaveImage(3)
}


def random_keys(count: int) -> list[str]:
    """`count` random 32-hex keys with distinct last four characters."""
    keys: list[str] = []
    while len(keys) < count:
        key = secrets.token_hex(16)
        if key[-4:] not in {k[-4:] for k in keys}:
            keys.append(key)
    secret_scan.remember(keys)
    return keys


class SimulatorError(RuntimeError):
    pass


class Simulator:
    """A running `python -m rhsim` on a free loopback port (context manager)."""

    def __init__(self, workflows_dir=DEFAULT_WORKFLOWS, keys=None, concurrency=2, run_seconds=0.0,
                 site="cn", comfyui_url=None, extra_args=(), *, key_count=2, start_timeout=30.0):
        self.workflows_dir = Path(workflows_dir)
        self.keys: list[str] = list(keys) if keys else random_keys(key_count)
        secret_scan.remember(self.keys)
        self.concurrency = concurrency
        self.run_seconds = run_seconds
        self.site = site
        self.comfyui_url = comfyui_url
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.base_url = ""
        self.process: subprocess.Popen | None = None
        self._stderr_file = None
        self._stderr_path: Path | None = None

    # ------------------------------------------------------------------ life
    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "rhsim", "--host", "127.0.0.1", "--port", "0",
               "--workflows", str(self.workflows_dir), "--concurrency", str(self.concurrency),
               "--run-seconds", str(self.run_seconds), "--site", self.site]
        for key in self.keys:
            cmd += ["--key", key]
        if self.comfyui_url:
            cmd += ["--comfyui", self.comfyui_url]
        return cmd + self.extra_args

    def start(self) -> "Simulator":
        fd, name = tempfile.mkstemp(prefix="rhsim-", suffix=".log")
        os.close(fd)
        self._stderr_path = Path(name)
        self._stderr_file = open(self._stderr_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(self.command(), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        stderr=self._stderr_file, stdin=subprocess.DEVNULL, env=env)
        line_holder: list[bytes] = []
        reader = threading.Thread(target=lambda: line_holder.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        line = line_holder[0].decode().strip() if line_holder else ""
        prefix = "rhsim listening on "
        if not line.startswith(prefix):
            self.stop()
            raise SimulatorError(f"rhsim did not start (got {line!r}); log:\n{self.log_text()}")
        self.base_url = line[len(prefix):]
        return self

    def pack_env(self, **more: str) -> dict[str, str]:
        """The environment of a ComfyUI whose pack uses this simulator with its first key."""
        return {"RUNNINGHUB_BASE_URL": self.base_url, "RUNNINGHUB_API_KEY": self.keys[0], **more}

    def stop(self) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc is not None and proc.stdout:
            proc.stdout.close()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._stderr_path is not None:
            self._stderr_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ hooks
    def _hook(self, method: str, path: str, payload: dict | None = None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + "/__sim__/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise SimulatorError(f"{method} /__sim__/{path}: HTTP {exc.code} {exc.read().decode()}") from exc

    def counts(self) -> dict:
        """{"total": n, "endpoints": {"create": n, ...}, "keys": {"…abcd": {"create": n}}}"""
        return self._hook("GET", "counts")

    def count(self, endpoint: str, key: str | None = None) -> int:
        """Requests so far to `endpoint` (e.g. "create", "outputs", "files"), optionally by one key."""
        counts = self.counts()
        if key is None:
            return counts["endpoints"].get(endpoint, 0)
        return counts["keys"].get(self.redacted(key), {}).get(endpoint, 0)

    def reset_counts(self) -> None:
        self._hook("POST", "reset", {"what": ["counts"]})

    def reset(self) -> None:
        """Back to the start state: counts, faults, config and account balances; open tasks
        are cancelled."""
        self._hook("POST", "reset", {"what": ["all"]})

    def tasks(self) -> list[dict]:
        return self._hook("GET", "tasks")

    def task(self, task_id: str) -> dict:
        """One task with its final (overridden) graph and promptTips."""
        return self._hook("GET", f"tasks/{task_id}")

    def native_prompts(self, key: str | None = None) -> list[dict]:
        """Prompts accepted by the native endpoint `/proxy/{key}/prompt` (tasks of kind `native`,
        `consumeCoins` > 0 once billed), optionally of one key."""
        return [t for t in self.tasks() if t["kind"] == "native" and (key is None or t["key"] == self.redacted(key))]

    def proxy_url(self, key: str) -> str:
        """The native ComfyUI endpoint of `key` (needs `comfyui_url`); a secret, as the key."""
        return f"{self.base_url}/proxy/{key}"

    def fault(self, endpoint: str, kind: str, count: int = 1, **params) -> dict:
        """Arms a fault for the next `count` calls of `endpoint` ("create", "outputs", ...,
        "files" for downloads, "*" for every API endpoint). Kinds: see rhsim/README.md."""
        return self._hook("POST", "faults", {"endpoint": endpoint, "kind": kind, "count": count, "params": params})

    def clear_faults(self) -> None:
        self._hook("POST", "faults/clear", {})

    def configure(self, **settings) -> dict:
        """Runtime settings (concurrency, run_seconds, queue_seconds, create_seconds, queue_depth,
        legacy, coins_per_task, max_upload_mb, url_ttl_seconds, webhook_*, websocket,
        websocket_drop_after, progress_steps, uploads_per_account, redirect_outputs,
        gzip_text_outputs: the table in rhsim/README.md), and per-key accounts:
        `configure(keys={key: {"coins": 0, "disabled": True, "money": "1.00"}})`."""
        return self._hook("POST", "config", settings)

    def config(self) -> dict:
        return self._hook("GET", "config")

    def expire_outputs(self, task_id: str) -> None:
        """Makes the output URLs of a task answer 404 from now on."""
        self._hook("POST", "expire", {"taskId": task_id})

    def log_text(self) -> str:
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        if self._stderr_file is not None:
            self._stderr_file.flush()
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")

    @staticmethod
    def redacted(key: str) -> str:
        return "\u2026" + key[-4:]

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.02):
        """Polls `predicate()` until it returns something truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(interval)
