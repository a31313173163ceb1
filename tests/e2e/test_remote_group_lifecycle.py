"""RH Remote Group while its remote prompt runs: ComfyUI killed or stopped, then the same graph
queued again; Cancel in the task panel; ComfyUI stopped with the default shutdown policy.

The remote is `remote_comfy` (a ComfyUI without the pack, with the test nodes of
support/native_test_nodes.py) behind the simulator's native endpoint. The group holds
RHTestGate, which runs until the test creates its gate file: whatever the test does while
the prompt runs, it surely still runs (the gate marks when it started), and it ends when the
test says so, whatever the machine's speed."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import websocket
from PIL import Image

from support.simulator import Simulator

pytestmark = pytest.mark.e2e

GROUP = {"title": "Gated", "node_ids": ["11", "12", "13"], "account": "default"}


@pytest.fixture(scope="module")
def sim(remote_comfy):
    with Simulator(comfyui_url=remote_comfy.base_url, concurrency=2) as s:
        yield s


@pytest.fixture(scope="module")
def _leaving(sim, comfy_host_factory):
    return comfy_host_factory(env=sim.pack_env(RUNNINGHUB_ON_SHUTDOWN="leave"), fresh=True, name="group-leave")


@pytest.fixture(scope="module")
def _cancelling(sim, comfy_host_factory):
    return comfy_host_factory(env=sim.pack_env(), fresh=True, name="group-cancel")


def _running(host):
    if not host.running:  # an earlier test stopped it
        host.restart()
    host.wait_idle()
    return host


@pytest.fixture
def leaving_host(_leaving):
    """A ComfyUI with the pack whose shutdown leaves remote prompts running."""
    return _running(_leaving)


@pytest.fixture
def cancelling_host(_cancelling):
    """A ComfyUI with the pack and the default shutdown policy (cancel remote work)."""
    return _running(_cancelling)


@pytest.fixture(autouse=True)
def _fresh_sim(sim):
    sim.reset()
    yield
    sim.clear_faults()


class Gate:
    """The file RHTestGate waits for, in the test's own folder."""

    def __init__(self, folder: Path):
        self.path = folder / "gate"

    @property
    def started(self) -> bool:
        return Path(f"{self.path}.started").exists()

    def open(self) -> None:
        self.path.touch()


@pytest.fixture
def gate(tmp_path):
    gate = Gate(tmp_path)
    yield gate
    gate.open()  # whatever happened, the remote ComfyUI is not kept busy


def local_image(host, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return host.upload_image(buf.getvalue(), f"gated-{seed}.png")["name"]


def gated_chain(image: str, gate: Gate | None) -> dict:
    """LoadImage(10) → [ImageInvert(11) → RHTestGate(12) → ImageBlur(13)] → SaveImage(14);
    without a gate, the same pixels all local: 11 → 13."""
    graph = {
        "10": {"class_type": "LoadImage", "inputs": {"image": image}},
        "11": {"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}},
        "12": {"class_type": "RHTestGate", "inputs": {"image": ["11", 0], "path": str(gate.path) if gate else "",
                                                       "timeout": 60.0}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["12", 0], "blur_radius": 2, "sigma": 1.3}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "gated"}},
    }
    if gate is None:
        del graph["12"]
        graph["13"]["inputs"]["image"] = ["11", 0]
    return graph


def converted(host, prompt: dict) -> tuple[dict, str]:
    reply = host.post("/runninghub/group/convert", json={"prompt": prompt, "groups": [GROUP]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["prompt"], body["groups"][0]["node_id"]


def saved(host, result, node_id: str = "14") -> np.ndarray:
    [image] = result.images(node_id)
    return np.asarray(Image.open(io.BytesIO(host.view_bytes(image["filename"], image["subfolder"], image["type"]))))


def statuses(result, node_id: str) -> list[dict]:
    return [e.data for e in result.events_of("runninghub.status") if e.data["node"] == node_id]


def queue_until_running(host, prompt: dict, gid: str, gate: Gate, timeout: float = 60) -> str:
    """Queue `prompt` and return its id once the group node says RUNNING and the gate node
    runs on the remote."""
    ws, client_id = host.open_ws()
    ws.settimeout(0.5)
    running = False
    try:
        prompt_id = host.queue_prompt(prompt, client_id=client_id)
        deadline = time.monotonic() + timeout
        while not (running and gate.started):
            assert time.monotonic() < deadline, f"the group never ran remotely:\n{host.log_tail()}"
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if not isinstance(message, str):
                continue
            event = json.loads(message)
            data = event.get("data") if isinstance(event.get("data"), dict) else {}
            if event.get("type") == "runninghub.status" and data.get("node") == gid and data.get("state") == "RUNNING":
                running = True
            assert event.get("type") != "execution_error" or data.get("prompt_id") != prompt_id, data
    finally:
        ws.close()
    return prompt_id


def running_remotely(sim, remote_comfy) -> dict:
    """The one native prompt, running at the simulator (open, not billed) and executing on
    the remote ComfyUI."""
    [task] = sim.native_prompts()
    assert task["status"] == "RUNNING" and not task["finished"] and not task["cancelled"], task
    running = [item[1] for item in remote_comfy.queue()["queue_running"]]
    assert running == [task["promptId"]], (running, task)
    return task


def interrupted_remotely(sim, remote_comfy, task: dict) -> None:
    """The prompt ended interrupted on the remote ComfyUI, unbilled, after one interrupt."""
    ended = sim.wait_for(lambda: (t := sim.native_prompts()[0])["finished"] and t, timeout=20, interval=0.1)
    assert ended["promptId"] == task["promptId"] and ended["cancelled"] and ended["consumeCoins"] == 0, ended
    remote = sim.wait_for(lambda: remote_comfy.history(task["promptId"]), timeout=20, interval=0.1)
    assert any(m[0] == "execution_interrupted" for m in remote["status"]["messages"]), remote["status"]
    assert not remote.get("outputs")  # the gate never opened: nothing after it ran
    assert sim.count("native/interrupt") == 1
    assert sim.count("native/prompt") == 1 and len(sim.native_prompts()) == 1


def ledger_rows(host, after: int = 0) -> list[tuple[str, str]]:
    """(task id, status) of the task ledger's entries numbered above `after`."""
    path = host.user_dir / "runninghub" / "tasks.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT task_id, status FROM tasks WHERE entry > ? ORDER BY entry", (after,)))


def last_entry(host) -> int:
    path = host.user_dir / "runninghub" / "tasks.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COALESCE(MAX(entry), 0) FROM tasks").fetchone()[0]


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
def test_a_restart_mid_run_then_requeue_reattaches_to_the_running_prompt(stop, leaving_host, sim, remote_comfy,
                                                                         gate):
    """ComfyUI killed (SIGKILL: nothing of the pack runs) or stopped with
    RUNNINGHUB_ON_SHUTDOWN=leave while the group's prompt runs remotely: after a restart, the
    same graph follows that prompt, still running, to its end; one prompt, billed once, the
    pixels of the same nodes run locally."""
    host = leaving_host
    image = local_image(host, 61 if stop == "SIGKILL" else 62)
    local = host.run(gated_chain(image, None), timeout=120)
    assert local.status == "success", local.error
    want = saved(host, local)
    prompt, gid = converted(host, gated_chain(image, gate))
    before = last_entry(host)
    queue_until_running(host, prompt, gid, gate)
    task = running_remotely(sim, remote_comfy)

    if stop == "SIGKILL":
        host.kill()
    else:
        host.send_signal(signal.SIGTERM)
        assert host.wait_exit(20) is not None, host.log_tail()
        assert f"native prompt {task['promptId']} left running" in host.log_text()
    assert running_remotely(sim, remote_comfy)["promptId"] == task["promptId"]  # nothing stopped it
    assert sim.count("native/interrupt") == 0
    host.restart()

    sent_when_followed = []

    def open_once_followed(event):
        data = event.data if isinstance(event.data, dict) else {}
        if (event.type == "runninghub.status" and data.get("node") == gid and data.get("state") in ("QUEUED", "RUNNING")
                and not sent_when_followed):
            sent_when_followed.append(sim.count("native/prompt"))
            gate.open()

    result = host.run(prompt, timeout=120, on_event=open_once_followed)
    assert result.status == "success", (result.error or {}).get("exception_message")
    assert sent_when_followed == [1]  # following the prompt while it still ran: no second POST /prompt
    assert np.array_equal(saved(host, result), want)
    billed = sim.wait_for(lambda: (t := sim.native_prompts()[0])["finished"] and t, timeout=20, interval=0.1)
    assert billed["promptId"] == task["promptId"] and not billed["cancelled"] and billed["consumeCoins"] > 0
    assert len(sim.native_prompts()) == 1 and sim.count("native/prompt") == 1
    assert "re-attached" in statuses(result, gid)[-1]["line"]
    assert ledger_rows(host, before) == [(task["promptId"], "SUCCESS")]


def test_the_task_panel_cancels_a_running_group_prompt_once(cancelling_host, sim, remote_comfy, gate):
    host = cancelling_host
    base = "/runninghub/tasks"
    prompt, gid = converted(host, gated_chain(local_image(host, 63), gate))
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        waiting = pool.submit(host.run, prompt, 120)
        sim.wait_for(lambda: gate.started, timeout=60, interval=0.05)
        task = running_remotely(sim, remote_comfy)

        def listed():
            found = [t for t in host.get(base).json()["tasks"] if t["task_id"] == task["promptId"]]
            return found if found and found[0]["status"] == "RUNNING" else None

        [entry] = sim.wait_for(listed, timeout=20, interval=0.1)
        assert entry["kind"] == "native" and entry["node_id"] == gid and entry["key"] == "…" + sim.keys[0][-4:]
        reply = host.post(f"{base}/{entry['entry']}/cancel", json={})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"cancelled": task["promptId"], "entry": entry["entry"]}
        result = waiting.result(timeout=30)  # the waiting node ends too
    finally:
        gate.open()
        pool.shutdown(wait=True)

    assert result.status == "error" and result.error["node_id"] == gid, result.status
    assert result.error["exception_type"].endswith("TaskCancelledError"), result.error
    assert f"RunningHub prompt {task['promptId']} was interrupted" in result.error["exception_message"]
    assert "SUCCESS" not in {s["state"] for s in statuses(result, gid)}
    interrupted_remotely(sim, remote_comfy, task)
    [after] = [t for t in host.get(base).json()["tasks"] if t["entry"] == entry["entry"]]
    assert after["status"] == "CANCEL", after
    assert host.post(f"{base}/{entry['entry']}/cancel", json={}).status_code == 409  # once only
    assert sim.count("native/interrupt") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_comfyui_interrupts_a_running_group_prompt_once(sig, cancelling_host, sim, remote_comfy, gate):
    """The default shutdown policy (host/shutdown.py): the remote prompt is interrupted, once,
    before ComfyUI exits; the ledger says CANCEL, so the next run sends a new prompt."""
    host = cancelling_host
    prompt, gid = converted(host, gated_chain(local_image(host, 64), gate))
    before = last_entry(host)
    queue_until_running(host, prompt, gid, gate)
    task = running_remotely(sim, remote_comfy)
    host.send_signal(sig)
    assert host.wait_exit(30) is not None, host.log_tail()
    stopping = [line for line in host.log_text().splitlines() if "ComfyUI is stopping: cancelling" in line]
    assert stopping and f"native prompt {task['promptId']}" in stopping[-1], host.log_tail()  # [-1]: after restarts
    interrupted_remotely(sim, remote_comfy, task)
    assert ledger_rows(host, before) == [(task["promptId"], "CANCEL")]


def test_the_task_panel_takes_a_queued_group_prompt_off_the_remote_queue(cancelling_host, sim, remote_comfy, gate,
                                                                        tmp_path):
    """The remote ComfyUI is busy with another prompt: the group's prompt waits in its queue,
    and the panel's Cancel deletes it there (no interrupt); the waiting node ends cancelled,
    not with "the remote no longer knows the prompt"."""
    host = cancelling_host
    (tmp_path / "other").mkdir()
    busy = Gate(tmp_path / "other")
    remote_comfy.queue_prompt({  # someone else's prompt, straight on the remote ComfyUI
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "RHTestGate", "inputs": {"image": ["1", 0], "path": str(busy.path), "timeout": 60.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    })
    base = "/runninghub/tasks"
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        sim.wait_for(lambda: busy.started, timeout=60, interval=0.05)
        prompt, gid = converted(host, gated_chain(local_image(host, 65), gate))
        waiting = pool.submit(host.run, prompt, 120)

        def listed():
            found = [t for t in host.get(base).json()["tasks"] if t["kind"] == "native" and t["status"] == "QUEUED"]
            return found or None

        [entry] = sim.wait_for(listed, timeout=30, interval=0.1)
        [task] = sim.native_prompts()
        assert task["promptId"] == entry["task_id"]
        assert entry["task_id"] in [item[1] for item in remote_comfy.queue()["queue_pending"]]
        reply = host.post(f"{base}/{entry['entry']}/cancel", json={})
        assert reply.status_code == 200, reply.text
        result = waiting.result(timeout=30)
    finally:
        busy.open()
        gate.open()
        pool.shutdown(wait=True)

    assert result.status == "error" and result.error["node_id"] == gid, result.status
    message = result.error["exception_message"]
    assert result.error["exception_type"].endswith("TaskCancelledError"), message
    assert f"RunningHub prompt {entry['task_id']} was taken off the remote queue before it ran" in message
    assert not gate.started  # it never ran
    ended = sim.wait_for(lambda: (t := sim.native_prompts()[0])["finished"] and t, timeout=20, interval=0.1)
    assert ended["cancelled"] and ended["consumeCoins"] == 0, ended
    assert sim.count("native/interrupt") == 0 and sim.count("native/prompt") == 1
    [after] = [t for t in host.get(base).json()["tasks"] if t["entry"] == entry["entry"]]
    assert after["status"] == "CANCEL", after


def test_a_requeue_after_another_node_failed_does_not_take_a_prompt_being_interrupted(cancelling_host, sim,
                                                                                     remote_comfy, gate):
    """Another node of the prompt fails while the group's POST /prompt is on its way:
    ComfyUI abandons RH Remote Group, whose run records the prompt and then interrupts it.
    Queued again at once (the bad branch removed), the group must not follow that prompt in
    the moment before its interrupt: it waits for it, then sends its own prompt."""
    host = cancelling_host
    image = local_image(host, 66)
    failing = gated_chain(image, gate)
    # a local branch that fails at run time (a prefix outside the output folder) after 1-5 s of work
    failing["20"] = {"class_type": "EmptyImage", "inputs": {"width": 2048, "height": 2048, "batch_size": 1,
                                                           "color": 5}}
    failing["21"] = {"class_type": "ImageBlur", "inputs": {"image": ["20", 0], "blur_radius": 10, "sigma": 3.0}}
    failing["22"] = {"class_type": "ImageBlur", "inputs": {"image": ["21", 0], "blur_radius": 10, "sigma": 3.0}}
    failing["30"] = {"class_type": "SaveImage", "inputs": {"images": ["22", 0], "filename_prefix": "../../escape"}}
    prompt, gid = converted(host, failing)
    before = last_entry(host)
    sim.fault("native/prompt", "delay", seconds=8, commit=True)  # the prompt outlives the local one
    first = host.run(prompt, timeout=120)
    assert first.status == "error" and first.error["node_id"] == "30", first.error
    assert sim.count("native/prompt") == 1  # the group's prompt was on its way when the prompt failed

    again, gid_again = converted(host, gated_chain(image, gate))
    assert gid_again == gid

    def open_when_sent(event):
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == "runninghub.status" and data.get("node") == gid and data.get("state") in ("QUEUED",
                                                                                                  "RUNNING"):
            gate.open()

    result = host.run(again, timeout=120, on_event=open_when_sent)
    assert result.status == "success", (result.error or {}).get("exception_message")
    prompts = sim.wait_for(lambda: (p := sim.native_prompts()) and all(t["finished"] for t in p) and p,
                           timeout=20, interval=0.1)
    assert len(prompts) == 2 and prompts[0]["cancelled"] and not prompts[1]["cancelled"], prompts
    assert [status for _, status in ledger_rows(host, before)] == ["CANCEL", "SUCCESS"]
    # the abandoned run winds down while this prompt runs: none of its statuses land under the node
    shown = {e.data.get("task_id") for e in result.events if e.type == "runninghub.status"} - {None}
    assert shown == {prompts[1]["promptId"]}, shown
