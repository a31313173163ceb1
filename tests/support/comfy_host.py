"""A real ComfyUI server for the end-to-end tests, driven the way a front end drives it.

`ComfyHost` starts ComfyUI 0.3.75 (set up by scripts/bootstrap.sh) as a child process in a
fresh base directory of its own, optionally with this pack symlinked into its
custom_nodes/, waits until it answers, and talks to it over HTTP and the `/ws` websocket.

    with ComfyHost(env={"RUNNINGHUB_BASE_URL": sim.url}) as host:
        host.assert_pack_imported_cleanly()
        result = host.run(graph, timeout=120)
        assert result.status == "success"

Where ComfyUI lives: `RH_VENV` and `RH_COMFYUI_DIR` when both are set, else whatever
`scripts/bootstrap.sh` prints (it builds the cache the first time, then answers at once).

The child never inherits the outer RUNNINGHUB_* variables (a developer's real key must not
reach a test); pass them in `env` to set them.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import requests
import websocket

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_DIR_NAME = "comfyui-runninghub-bridge"
PACK_PYTHON_MODULE = f"custom_nodes.{PACK_DIR_NAME}"
DEFAULT_STARTUP_TIMEOUT = 240.0
HTTP_TIMEOUT = (5.0, 60.0)  # connect, read
LOG_TAIL_LINES = 60

# Binary websocket frames start with a 4-byte big-endian event type (server.py).
BINARY_EVENT_NAMES = {
    1: "b_preview_image",
    2: "b_unencoded_preview_image",
    3: "b_progress_text",
    4: "b_preview_image_with_metadata",
}

log = logging.getLogger("tests.comfy_host")


class ComfyHostError(RuntimeError):
    """The host failed to start, answer or finish in time; the message ends with the log tail."""


class PromptRejected(ComfyHostError):
    """POST /prompt answered 400: the graph failed validation."""

    def __init__(self, message: str, *, error: Any, node_errors: Mapping[str, Any], body: Any):
        super().__init__(message)
        self.error = error
        self.node_errors = dict(node_errors or {})
        self.body = body


@dataclass(frozen=True)
class Event:
    """One websocket message as received. `t` is time.monotonic() at receipt."""

    type: str
    data: Any
    t: float


@dataclass
class RunResult:
    prompt_id: str
    client_id: str
    events: list[Event]
    history: dict
    started: float
    finished: float

    @property
    def duration(self) -> float:
        return self.finished - self.started

    @property
    def status(self) -> str:
        """'success', 'error', 'interrupted', or what /history says otherwise."""
        types = {e.type for e in self.events if _event_prompt_id(e) == self.prompt_id}
        if "execution_error" in types:
            return "error"
        if "execution_interrupted" in types:
            return "interrupted"
        if "execution_success" in types:
            return "success"
        return str(self.history.get("status", {}).get("status_str", "unknown"))

    @property
    def error(self) -> dict | None:
        """The `execution_error` payload (node_id, node_type, exception_message, traceback...)."""
        for e in self.events:
            if e.type == "execution_error" and _event_prompt_id(e) == self.prompt_id:
                return e.data
        return None

    @property
    def outputs(self) -> dict:
        """History outputs by node id: {"9": {"images": [{filename, subfolder, type}]}}."""
        return self.history.get("outputs", {})

    def events_of(self, *types: str) -> list[Event]:
        return [e for e in self.events if e.type in types]

    def images(self, node_id: str | None = None) -> list[dict]:
        found = []
        for nid, out in self.outputs.items():
            if node_id is None or nid == node_id:
                found.extend(out.get("images", []))
        return found

    def progress_texts(self, node_id: str | None = None) -> list[str]:
        """Texts a node sent with PromptServer.send_progress_text, in order."""
        return [
            e.data["text"]
            for e in self.events
            if e.type == "b_progress_text" and (node_id is None or e.data["node_id"] == node_id)
        ]


def _event_prompt_id(event: Event) -> str | None:
    return event.data.get("prompt_id") if isinstance(event.data, dict) else None


# --------------------------------------------------------------------------------------
# Where ComfyUI and its venv live: one of the hosts scripts/bootstrap.sh builds, picked by
# RH_COMFY_HOST (default 0.3.75), optionally with another front end (RH_FRONTEND=1.58.1).

DEFAULT_HOST = "0.3.75"
_bootstrap_values: dict[str, str] | None = None
_locations_lock = threading.Lock()


def selected_host() -> str:
    """The ComfyUI version the tests run against (RH_COMFY_HOST, set by scripts/test-matrix.sh)."""
    return os.environ.get("RH_COMFY_HOST") or DEFAULT_HOST


def selected_front_end() -> str | None:
    """The front-end version served instead of the host's own (RH_FRONTEND), or None."""
    return os.environ.get("RH_FRONTEND") or None


def _slug(version: str) -> str:
    return version.replace(".", "_")


def bootstrap_value(key: str) -> str:
    """One KEY=VALUE line of scripts/bootstrap.sh's output: from the environment (RH_<KEY>,
    exported by scripts/run-in-venv.sh), else by running the bootstrap (cached, so quick)."""
    global _bootstrap_values
    if os.environ.get(f"RH_{key}"):
        return os.environ[f"RH_{key}"]
    with _locations_lock:
        if _bootstrap_values is None:
            proc = subprocess.run(
                ["bash", str(REPO_ROOT / "scripts" / "bootstrap.sh")],
                capture_output=True, text=True, timeout=3600,
            )
            if proc.returncode != 0:
                raise ComfyHostError(
                    f"scripts/bootstrap.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
            _bootstrap_values = dict(
                line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if key not in _bootstrap_values:
        raise ComfyHostError(f"scripts/bootstrap.sh did not set {key} up: is it in RH_HOSTS?")
    return _bootstrap_values[key]


def comfy_locations(host: str | None = None) -> tuple[Path, Path]:
    """(venv, comfyui_dir) of a host version (default: the selected one)."""
    slug = _slug(host or selected_host())
    venv_path = Path(bootstrap_value(f"HOST_{slug}_VENV"))
    comfy_path = Path(bootstrap_value(f"HOST_{slug}_COMFYUI_DIR"))
    if not (venv_path / "bin" / "python").exists():
        raise ComfyHostError(f"no python in venv {venv_path}")
    if not (comfy_path / "main.py").exists():
        raise ComfyHostError(f"no ComfyUI main.py in {comfy_path}")
    return venv_path, comfy_path


def front_end_args() -> list[str]:
    """ComfyUI arguments that serve the selected front end ([] for the host's own)."""
    version = selected_front_end()
    if version is None:
        return []
    root = Path(bootstrap_value(f"FRONTEND_{_slug(version)}_ROOT"))
    if not (root / "index.html").exists():
        raise ComfyHostError(f"no front end {version} in {root}")
    return ["--front-end-root", str(root)]


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_log_decoration(text: str) -> str:
    """A host's log without colour codes: 0.33 colours its `[INFO]` prefixes, 0.3.75 does
    not; checks look for a message anywhere in a line, never at its start."""
    return ANSI_ESCAPE.sub("", text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def declared_pack_node_ids() -> list[str]:
    """Node ids the pack's extension lists, asked in a separate interpreter of the test venv
    (with ComfyUI's comfy_api importable), independently of any server."""
    venv, comfy_dir = comfy_locations()
    script = (
        "import asyncio, importlib.util, json, sys\n"
        f"sys.path.insert(0, {str(comfy_dir)!r})\n"
        f"spec = importlib.util.spec_from_file_location('rh_pack_probe', {str(REPO_ROOT / '__init__.py')!r},"
        f" submodule_search_locations=[{str(REPO_ROOT)!r}])\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['rh_pack_probe'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "async def main():\n"
        "    ext = await mod.comfy_entrypoint()\n"
        "    return [n.GET_SCHEMA().node_id for n in await ext.get_node_list()]\n"
        "print('NODE_IDS=' + json.dumps(asyncio.run(main())))\n"
    )
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], cwd=tempfile.gettempdir(),
        capture_output=True, text=True, timeout=300, env=_child_env({}),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("NODE_IDS="):
            return json.loads(line[len("NODE_IDS="):])
    raise ComfyHostError(
        f"could not list the pack's nodes (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNINGHUB_")}
    env.update(
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        DO_NOT_TRACK="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


# Hosts still running when the interpreter exits are killed (whole process group).
_live_hosts: "set[ComfyHost]" = set()


@atexit.register
def _kill_leftovers() -> None:
    for host in list(_live_hosts):
        try:
            host.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class ComfyHost:
    """A real ComfyUI server in a temporary base directory. Use as a context manager."""

    def __init__(
        self,
        *,
        with_pack: bool = True,
        env: Mapping[str, str] | None = None,
        extra_args: Iterable[str] = (),
        port: int = 0,
        name: str = "comfy",
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        keep_base_dir: bool = False,
        pack_source: str | os.PathLike = REPO_ROOT,
    ):
        self.with_pack = with_pack
        self.pack_source = Path(pack_source)
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.requested_port = port
        self.name = name
        self.startup_timeout = startup_timeout
        self.keep_base_dir = keep_base_dir or os.environ.get("RH_KEEP_HOST_DIRS") == "1"
        self.port: int | None = None
        self.base_dir: Path | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._session = requests.Session()

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> "ComfyHost":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def user_dir(self) -> Path:
        return self.base_dir / "user"

    @property
    def pack_dir(self) -> Path:
        return self.base_dir / "custom_nodes" / PACK_DIR_NAME

    def start(self) -> "ComfyHost":
        if self._proc is not None:
            raise ComfyHostError("already started")
        venv, comfy_dir = comfy_locations()
        if self.base_dir is None:  # a restart keeps its base directory (user folder, inputs, outputs)
            self.base_dir = Path(tempfile.mkdtemp(prefix=f"rh-{self.name}-"))
            for sub in ("custom_nodes", "input", "output", "user", "temp"):
                (self.base_dir / sub).mkdir()
            if self.with_pack:
                (self.base_dir / "custom_nodes" / PACK_DIR_NAME).symlink_to(self.pack_source, True)
        self.log_path = self.base_dir / "comfyui.log"
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            cmd = [
                str(venv / "bin" / "python"), "main.py", "--cpu",
                "--listen", "127.0.0.1", "--port", str(self.port),
                "--disable-auto-launch", "--base-directory", str(self.base_dir),
                "--database-url", "sqlite:///:memory:", *front_end_args(), *self.extra_args,
            ]
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(f"$ {' '.join(cmd)}\n".encode())
            self._log_file.flush()
            started = time.monotonic()
            self._proc = subprocess.Popen(
                cmd, cwd=comfy_dir, env=_child_env(self.env), stdin=subprocess.DEVNULL,
                stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
            _live_hosts.add(self)
            try:
                self._wait_ready(started)
                self.startup_seconds = time.monotonic() - started
                log.info("%s ready on %s in %.1fs", self.name, self.base_url, self.startup_seconds)
                return self
            except ComfyHostError:
                port_taken = "address already in use" in self.log_text().lower()
                self._terminate()
                if not (port_taken and attempt + 1 < attempts):
                    raise
        raise AssertionError("unreachable")

    def restart(self) -> "ComfyHost":
        """Stop the server as `kill -TERM` does (SIGKILL only if it hangs) and start it again
        in the same base directory, on a new port."""
        self._terminate()
        return self.start()

    def kill(self) -> None:
        """SIGKILL ComfyUI and its children at once, as a crash or the OOM killer would: no
        signal handler runs. `start()` (or `restart()`) brings it back in the same base directory."""
        proc = self._proc
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        self._terminate()

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ComfyHostError(self._with_log(
                    f"ComfyUI ({self.name}) exited with {self._proc.returncode} during start-up"))
            try:
                r = self._session.get(f"{self.base_url}/system_stats", timeout=(1, 5))
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise ComfyHostError(self._with_log(
            f"ComfyUI ({self.name}) not ready after {self.startup_timeout:.0f}s"))

    def stop(self, timeout: float = 15) -> None:
        """Stop the server (SIGTERM, then SIGKILL to the whole process group); idempotent."""
        self._terminate(timeout)
        if self.base_dir is not None and not self.keep_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def _terminate(self, timeout: float = 15) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # Children that left the group's leader behind.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        _live_hosts.discard(self)

    def send_signal(self, sig: int) -> None:
        """Send `sig` to ComfyUI's own process, as Ctrl+C or a service manager would."""
        os.kill(self._proc.pid, sig)

    def wait_exit(self, timeout: float) -> int | None:
        """ComfyUI's exit status once it has exited, or None if it still runs after `timeout` s."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ---------------------------------------------------------------- logs

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _with_log(self, message: str) -> str:
        return f"{message}\n--- last lines of {self.log_path} ---\n{self.log_tail()}"

    def assert_pack_imported_cleanly(self, expected_nodes: Iterable[str] = ()) -> list[str]:
        """Fail unless ComfyUI imported the pack without error and lists `expected_nodes`
        as the pack's. (ComfyUI's own audio nodes fail to import here for lack of
        torchaudio; only lines naming the pack's folder count.) Returns the node ids that /object_info attributes to the pack."""
        assert self.with_pack, "this host was started without the pack"
        text = strip_log_decoration(self.log_text())
        pack_path = str(self.pack_dir)
        problems = []
        for line in text.splitlines():
            if pack_path in line and ("IMPORT FAILED" in line or "Cannot import" in line):
                problems.append(line.strip())
            elif pack_path in line and ("comfy_entrypoint in" in line or line.lstrip().startswith("Skip ")):
                problems.append(line.strip())
        loaded = re.search(r"\b[\d.]+ seconds: " + re.escape(pack_path) + r"\s*$", text, re.M)
        if problems or not loaded:
            raise AssertionError(self._with_log(
                "the pack did not import cleanly: "
                + ("; ".join(problems) if problems else "no successful import line for " + pack_path)))
        ids = self.pack_node_ids()
        missing = sorted(set(expected_nodes) - set(ids))
        if missing:
            raise AssertionError(self._with_log(f"pack nodes missing from /object_info: {missing}"))
        return ids

    # ---------------------------------------------------------------- HTTP

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        try:
            return self._session.request(method, self._url(path), **kw)
        except requests.RequestException as e:
            raise ComfyHostError(self._with_log(f"{method} {path} failed: {e!r}")) from e

    def _json(self, method: str, path: str, **kw) -> Any:
        r = self._request(method, path, **kw)
        if r.status_code != 200:
            raise ComfyHostError(self._with_log(f"{method} {path} -> {r.status_code}: {r.text[:2000]}"))
        return r.json()

    def get(self, path: str, **kw) -> requests.Response:
        """Any GET on the server (routes of the pack, /extensions, ...)."""
        return self._request("GET", path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self._request("POST", path, **kw)

    def object_info(self, node_class: str | None = None) -> dict:
        path = "/object_info" + (f"/{urllib.parse.quote(node_class)}" if node_class else "")
        return self._json("GET", path)

    def pack_node_ids(self) -> list[str]:
        return sorted(
            k for k, v in self.object_info().items() if v.get("python_module") == PACK_PYTHON_MODULE)

    def history(self, prompt_id: str | None = None) -> dict:
        if prompt_id is None:
            return self._json("GET", "/history")
        return self._json("GET", f"/history/{prompt_id}").get(prompt_id, {})

    def queue(self) -> dict:
        return self._json("GET", "/queue")

    def interrupt(self, prompt_id: str | None = None) -> None:
        body = {"prompt_id": prompt_id} if prompt_id else {}
        r = self._request("POST", "/interrupt", json=body)
        if r.status_code != 200:
            raise ComfyHostError(self._with_log(f"/interrupt -> {r.status_code}: {r.text[:500]}"))

    def view_bytes(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        r = self._request("GET", "/view", params={"filename": filename, "subfolder": subfolder, "type": type})
        if r.status_code != 200:
            raise ComfyHostError(self._with_log(f"/view {filename!r} -> {r.status_code}"))
        return r.content

    def upload_image(self, image: str | os.PathLike | bytes, name: str | None = None, *,
                     subfolder: str = "", type: str = "input", overwrite: bool = True) -> dict:
        """POST /upload/image; returns {"name", "subfolder", "type"}."""
        if isinstance(image, (bytes, bytearray)):
            data, name = bytes(image), name or f"upload-{uuid.uuid4().hex[:8]}.png"
        else:
            data, name = Path(image).read_bytes(), name or Path(image).name
        return self._json(
            "POST", "/upload/image",
            files={"image": (name, data, "application/octet-stream")},
            data={"subfolder": subfolder, "type": type, "overwrite": "true" if overwrite else "false"},
        )

    # ---------------------------------------------------------------- prompts

    def queue_prompt(self, api_graph: Mapping, client_id: str | None = None,
                     extra_data: Mapping | None = None) -> str:
        body: dict[str, Any] = {"prompt": api_graph, "client_id": client_id or uuid.uuid4().hex}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        r = self._request("POST", "/prompt", json=body)
        if r.status_code == 400:
            try:
                payload = r.json()
            except ValueError:
                payload = {"error": r.text}
            raise PromptRejected(
                f"prompt rejected: {json.dumps(payload.get('error'))[:1000]}; "
                f"node_errors={json.dumps(payload.get('node_errors'))[:3000]}",
                error=payload.get("error"), node_errors=payload.get("node_errors") or {}, body=payload)
        if r.status_code != 200:
            raise ComfyHostError(self._with_log(f"POST /prompt -> {r.status_code}: {r.text[:2000]}"))
        return r.json()["prompt_id"]

    def open_ws(self, client_id: str | None = None, timeout: float = 10) -> tuple[websocket.WebSocket, str]:
        client_id = client_id or uuid.uuid4().hex
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        return ws, client_id

    def run(self, api_graph: Mapping, timeout: float = 300, *, extra_data: Mapping | None = None,
            client_id: str | None = None, on_event=None) -> RunResult:
        """Queue `api_graph` and collect every websocket event until it finishes.

        Finished means `executing` with node None for this prompt (ComfyUI sends it after
        success, error and interrupt alike, once /history holds the entry). `on_event(event)`
        is called for each event as it arrives (e.g. to interrupt mid-run). On timeout the
        prompt is interrupted and ComfyHostError raised with the events seen.
        """
        ws, client_id = self.open_ws(client_id)
        events: list[Event] = []
        started = time.monotonic()
        try:
            prompt_id = self.queue_prompt(api_graph, client_id=client_id, extra_data=extra_data)
            deadline = started + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._timeout_interrupt(prompt_id)
                    raise ComfyHostError(self._with_log(
                        f"prompt {prompt_id} not finished after {timeout}s; events: "
                        f"{[e.type for e in events][-40:]}"))
                ws.settimeout(min(remaining, 5.0))
                try:
                    opcode, payload = ws.recv_data()
                except websocket.WebSocketTimeoutException:
                    if not self.running:
                        raise ComfyHostError(self._with_log("ComfyUI died during the run"))
                    continue
                except websocket.WebSocketConnectionClosedException as e:
                    raise ComfyHostError(self._with_log(f"websocket closed during the run: {e}")) from e
                event = _decode(opcode, payload)
                if event is None:
                    continue
                events.append(event)
                if on_event is not None:
                    on_event(event)
                if (event.type == "executing" and isinstance(event.data, dict)
                        and event.data.get("node") is None
                        and event.data.get("prompt_id") == prompt_id):
                    break
        finally:
            try:
                ws.close()
            except Exception:  # noqa: BLE001
                pass
        finished = time.monotonic()
        return RunResult(prompt_id, client_id, events, self.history(prompt_id), started, finished)

    def _timeout_interrupt(self, prompt_id: str) -> None:
        try:
            self.interrupt(prompt_id)
        except ComfyHostError:
            pass

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until nothing is running or pending (e.g. between tests sharing a host)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            q = self.queue()
            if not q.get("queue_running") and not q.get("queue_pending"):
                return
            time.sleep(0.2)
        raise ComfyHostError(self._with_log(f"queue not idle after {timeout}s"))


def interrupt_after(host: ComfyHost, node_id: str, offset: float):
    """An `on_event` hook for `host.run` that interrupts the prompt `offset` s after
    `node_id` starts executing; returns (hook, list that receives the wall-clock time
    the interrupt was sent, comparable with the simulator's task times)."""
    sent: list[float] = []

    def fire() -> None:
        sent.append(time.time())
        host.interrupt()

    def on_event(event: Event) -> None:
        if event.type == "executing" and isinstance(event.data, dict) and event.data.get("node") == node_id \
                and not sent:
            timer = threading.Timer(offset, fire)
            timer.daemon = True
            timer.start()

    return on_event, sent


def _decode(opcode: int, payload: bytes) -> Event | None:
    now = time.monotonic()
    if opcode == websocket.ABNF.OPCODE_TEXT:
        msg = json.loads(payload)
        return Event(msg.get("type", "?"), msg.get("data"), now)
    if opcode == websocket.ABNF.OPCODE_BINARY and len(payload) >= 4:
        (kind,) = struct.unpack(">I", payload[:4])
        body = payload[4:]
        name = BINARY_EVENT_NAMES.get(kind, f"b_{kind}")
        if kind == 3 and len(body) >= 4:
            (n,) = struct.unpack(">I", body[:4])
            return Event(name, {"node_id": body[4:4 + n].decode(), "text": body[4 + n:].decode(errors="replace")}, now)
        return Event(name, body, now)
    return None
