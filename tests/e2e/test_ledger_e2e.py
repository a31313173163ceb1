"""The task ledger in a real ComfyUI against the simulator: a re-queued run re-attaches to its
earlier task instead of creating (and billing) another one, whatever ended the first wait."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from support.graphs import run_fetch, upload_run_fetch
from support.ledger_view import ledger_rows
from support.pack import pack_module
from support.simulator import WORKFLOWS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(sim, comfy_host_factory):
    """A ComfyUI of this module's own: the restart test stops and starts it. Its remote
    tasks outlive a shutdown (RUNNINGHUB_ON_SHUTDOWN=leave), as kill -TERM leaves them."""
    return comfy_host_factory(env=sim.pack_env(RUNNINGHUB_ON_SHUTDOWN="leave"), fresh=True, name="ledger")


@pytest.fixture(autouse=True)
def _fresh_each_test(fresh):
    """Every test starts from the simulator's start state on an idle ComfyUI."""


def local_image(host, seed: int) -> tuple[str, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return host.upload_image(buf.getvalue(), f"ledger-{seed}.png")["name"], pixels


def saved_pixels(host, result, node_id: str = "15") -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.view_bytes(i["filename"], i["subfolder"], i["type"]))))
            for i in result.images(node_id)]


def executed(result, node_id: str) -> bool:
    """Whether ComfyUI ran the node in this prompt (rather than taking it from its cache)."""
    cached = [n for e in result.events_of("execution_cached") for n in e.data.get("nodes", [])]
    return node_id not in cached and any(e.data.get("node") == node_id for e in result.events_of("executing"))




def free_cache(host) -> None:
    """What ComfyUI's newest RAM-pressure cache does on its own: forget every node output."""
    assert host.post("/free", json={"unload_models": True, "free_memory": True}).status_code == 200
    time.sleep(2.0)  # the prompt worker wakes up and resets its caches; `executed` checks it did


def test_a_restart_mid_run_then_requeue_reattaches(host, sim):
    sim.configure(run_seconds=10)
    name, pixels = local_image(host, 31)
    graph = upload_run_fetch(name, WORKFLOWS["invert"], seed=7)
    ws, client_id = host.open_ws()
    host.queue_prompt(graph, client_id=client_id)
    deadline = time.monotonic() + 60
    while not any(r["task_id"] and r["status"] in ("QUEUED", "RUNNING") for r in ledger_rows(host)):  # created
        assert time.monotonic() < deadline, "the remote task never started"
        time.sleep(0.1)
    ws.close()
    host.restart()  # kill -TERM mid-run, then start again with the same user folder
    [row] = ledger_rows(host)
    assert row["status"] in ("QUEUED", "RUNNING") and row["task_id"] == sim.tasks()[0]["taskId"]

    result = host.run(graph, timeout=120)
    assert result.status == "success", result.error
    [out] = saved_pixels(host, result)
    assert np.array_equal(out[:, :, :3], 255 - pixels)
    assert sim.count("create") == 1  # the task the user asked for, and only it
    assert ledger_rows(host)[-1]["status"] == "SUCCESS"


def test_a_lost_create_reply_then_requeue_says_the_task_may_exist(host, sim):
    sim.fault("create", "reset_after_commit")
    graph = run_fetch(WORKFLOWS["noise"], seed=11)
    first = host.run(graph, timeout=120)
    assert first.status == "error" and sim.count("create") == 1

    again = host.run(graph, timeout=120)
    assert again.status == "error"
    message = again.error["exception_message"]
    assert "may have created a billed RunningHub task" in message
    assert "change the seed" in message and "task panel" in message and "127.0.0.1" in message
    assert sim.count("create") == 1  # no blind second create
    assert again.error["exception_type"].endswith("TaskMayExistError")

    [entry] = [r for r in ledger_rows(host) if r["status"] == "MAY_EXIST"]
    assert requests.delete(f"{host.base_url}/runninghub/tasks/{entry['entry']}", timeout=30).status_code == 200
    assert host.run(graph, timeout=120).status == "success"  # cleared on purpose: a new task
    assert sim.count("create") == 2

    graph["13"]["inputs"]["seed"] = 12  # a new seed asks for a new task on purpose
    assert host.run(graph, timeout=120).status == "success"
    assert sim.count("create") == 3
    stored = b"".join(p.read_bytes() for p in (host.user_dir / "runninghub").glob("tasks.sqlite3*"))
    assert stored and sim.keys[0].encode() not in stored  # the ledger (and its WAL) hold the key's last 4 only


def test_a_cleared_cache_then_requeue_reuses_the_finished_task(host, sim):
    name, pixels = local_image(host, 32)
    graph = upload_run_fetch(name, WORKFLOWS["invert"], seed=3)
    first = host.run(graph, timeout=120)
    assert first.status == "success", first.error
    free_cache(host)
    again = host.run(graph, timeout=120)
    assert again.status == "success", again.error
    assert executed(again, "13"), "ComfyUI answered from its cache: the ledger was not exercised"
    assert sim.count("create") == 1
    [task] = sim.tasks()
    states = [(e.data.get("state"), e.data.get("task_id")) for e in again.events_of("runninghub.status")
              if e.data["node"] == "13"]
    assert ("REATTACHED", task["taskId"]) in states and states[-1] == ("SUCCESS", task["taskId"])
    assert [p.tolist() for p in saved_pixels(host, again)] == [p.tolist() for p in saved_pixels(host, first)]
    assert np.array_equal(saved_pixels(host, again)[0][:, :, :3], 255 - pixels)

    graph["13"]["inputs"]["seed"] = 4
    assert host.run(graph, timeout=120).status == "success"
    assert sim.count("create") == 2


def test_an_error_in_a_later_node_then_requeue_reattaches(host, sim):
    graph = run_fetch(WORKFLOWS["mixed"], seed=21, save_images=False)
    graph["14"]["inputs"]["size_policy"] = "error"  # the mixed workflow's images differ in size
    failed = host.run(graph, timeout=120)
    assert failed.status == "error" and failed.error["node_id"] == "14", failed.error
    free_cache(host)
    graph["14"]["inputs"]["size_policy"] = "pad"
    fixed = host.run(graph, timeout=120)
    assert fixed.status == "success", fixed.error
    assert executed(fixed, "13")
    assert sim.count("create") == 1




def test_the_task_panel_routes_list_cancel_and_clear(host, sim):
    sim.configure(run_seconds=60)
    base = f"{host.base_url}/runninghub/tasks"
    prompt = host.queue_prompt(run_fetch(WORKFLOWS["empty"], seed=51))
    deadline = time.monotonic() + 60
    while not any(t["status"] == "RUNNING" for t in sim.tasks()):
        assert time.monotonic() < deadline, "the remote task never started"
        time.sleep(0.1)
    [task] = sim.tasks()
    listing = requests.get(base, timeout=30).json()
    assert listing["lifetime_hours"] == 24
    [entry] = [t for t in listing["tasks"] if t["task_id"] == task["taskId"]]
    assert entry["status"] in ("QUEUED", "RUNNING") and entry["prompt_id"] == prompt and entry["node_id"] == "13"
    assert entry["key"] == "…" + sim.keys[0][-4:] and sim.keys[0] not in json.dumps(listing)
    number = entry["entry"]

    assert requests.post(f"{base}/{number}/cancel", data={"x": "1"}, timeout=30).status_code == 415  # a form post
    assert requests.delete(f"{base}/{number}", timeout=30).status_code == 409  # running: cancel first
    assert requests.post(f"{base}/abc/cancel", json={}, timeout=30).status_code == 400
    assert requests.post(f"{base}/999999/cancel", json={}, timeout=30).status_code == 404
    rebound = {"Host": f"evil.example:{host.port}"}  # DNS rebinding: the host guard covers the panel too
    assert requests.get(base, headers=rebound, timeout=30).status_code == 403
    assert requests.post(f"{base}/{number}/cancel", json={}, headers=rebound, timeout=30).status_code == 403
    assert sim.count("cancel") == 0

    reply = requests.post(f"{base}/{number}/cancel", json={}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert sim.task(task["taskId"])["cancelled"] is True
    host.wait_idle()
    assert host.history(prompt)["status"]["status_str"] == "error"
    [entry] = [t for t in requests.get(base, timeout=30).json()["tasks"] if t["entry"] == number]
    assert entry["status"] == "CANCEL"
    assert requests.post(f"{base}/{number}/cancel", json={}, timeout=30).status_code == 409
    assert requests.delete(f"{base}/{number}", timeout=30).status_code == 200
    assert number not in [t["entry"] for t in requests.get(base, timeout=30).json()["tasks"]]


def test_a_create_cut_short_by_a_killed_comfyui_can_be_cleared_from_the_task_panel(host, sim):
    """ComfyUI was killed between recording a run and hearing its create's reply: its entry
    stays SUBMITTING with the dead process as owner. The next queue says the task may exist
    and points at the task panel, which shows it as such and clears it."""
    graph = run_fetch(WORKFLOWS["noise"], seed=61)
    assert host.run(graph, timeout=120).status == "success"  # the ledger exists; its fingerprint is the node's
    ledger_mod = pack_module("client.ledger")
    path = host.user_dir / "runninghub" / "tasks.sqlite3"
    done = ledger_rows(host)[-1]  # this run's entry
    assert done["status"] == "SUCCESS" and done["seed"] == "61"
    with sqlite3.connect(path) as conn:  # the same run again, as the killed process left it
        conn.execute("DELETE FROM tasks")
        conn.execute("INSERT INTO tasks (fingerprint, site, account, kind, workflow_id, instance_type, seed, overrides,"
                     " key_hint, status, prompt_id, node_id, owner, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (done["fingerprint"], done["site"], done["account"], done["kind"], done["workflow_id"],
                      done["instance_type"], done["seed"], done["overrides"], done["key_hint"], ledger_mod.SUBMITTING,
                      "p-dead", "13", "a-process-that-was-killed", time.time(), time.time()))
    creates = sim.count("create")
    free_cache(host)  # ComfyUI would otherwise take the node's output from its cache
    again = host.run(graph, timeout=120)
    assert again.status == "error" and again.error["exception_type"].endswith("TaskMayExistError")
    assert "task panel" in again.error["exception_message"] and sim.count("create") == creates

    base = f"{host.base_url}/runninghub/tasks"
    [entry] = requests.get(base, timeout=30).json()["tasks"]
    assert entry["status"] == "MAY_EXIST"
    assert requests.delete(f"{base}/{entry['entry']}", timeout=30).status_code == 200
    free_cache(host)
    assert host.run(graph, timeout=120).status == "success" and sim.count("create") == creates + 1


def test_a_requeue_after_another_node_failed_does_not_take_a_task_being_cancelled(host, sim):
    """Another node of the prompt fails while RH Run Workflow's create is on its way: ComfyUI
    abandons the node, whose run records the task and then cancels it (nothing should run
    for a prompt that failed). Queued again at once (the bad node removed), the run must not
    re-attach to that task in the moment before its cancel (it ended "cancelled"): it waits
    for the cancel, then creates its own task and succeeds."""
    graph = run_fetch(WORKFLOWS["noise"], seed=63, save_images=False)
    # a local branch that fails at run time (a prefix outside the output folder) after 1-5 s of work
    graph["20"] = {"class_type": "EmptyImage", "inputs": {"width": 2048, "height": 2048, "batch_size": 1, "color": 7}}
    graph["21"] = {"class_type": "ImageBlur", "inputs": {"image": ["20", 0], "blur_radius": 10, "sigma": 3.0}}
    graph["22"] = {"class_type": "ImageBlur", "inputs": {"image": ["21", 0], "blur_radius": 10, "sigma": 3.0}}
    graph["30"] = {"class_type": "SaveImage", "inputs": {"images": ["22", 0], "filename_prefix": "../../escape"}}
    sim.configure(run_seconds=30)
    sim.fault("create", "delay", seconds=8, commit=True)  # the create outlives the prompt
    first = host.run(graph, timeout=120)
    assert first.status == "error" and first.error["node_id"] == "30", first.error
    assert sim.count("create") == 1  # the create was on its way when the prompt failed
    sim.configure(run_seconds=0.3)
    for node in ("20", "21", "22", "30"):
        del graph[node]
    again = host.run(graph, timeout=120)
    assert again.status == "success", again.error
    tasks = sim.tasks()
    assert len(tasks) == 2 and tasks[0]["cancelled"] and not tasks[1]["cancelled"], tasks
    assert [row["status"] for row in ledger_rows(host)][-2:] == ["CANCEL", "SUCCESS"]


SENDING_COMFYUI = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from support.pack import pack_module
    L, reattach = pack_module("client.ledger"), pack_module("remote.reattach")
    journal = reattach.RunJournal(L.TaskLedger({path!r}), account="default", seed=62)
    run = journal.for_run(pack_module("client.sites").resolve_site(base_url={site!r}), "workflow", "42", "default", [])
    with run.turn():
        run.earlier()
        journal.ledger.begin(run.fingerprint)
        print("sending", flush=True)
        sys.stdin.readline()  # the create stays on its way until the test is done looking
""")


def test_a_create_another_comfyui_is_sending_cannot_be_cleared_until_it_stopped(host, sim, tmp_path):
    """Two ComfyUIs share one user folder. While the other one is between recording a run and
    hearing its create's reply (it holds the run's turn), this one's task panel shows the entry
    as submitting and refuses to clear it: clearing would let a re-queue bill a second task.
    Once that process is killed (mid-create), the entry may exist and can be cleared."""
    path = host.user_dir / "runninghub" / "tasks.sqlite3"
    assert host.run(run_fetch(WORKFLOWS["noise"], seed=62), timeout=120).status == "success"  # the ledger exists
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM tasks")
    script = tmp_path / "sending.py"
    script.write_text(SENDING_COMFYUI.format(tests=str(Path(__file__).resolve().parents[1]), path=str(path),
                                             site=sim.base_url))
    other = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "sending", other.stderr.read()
        base = f"{host.base_url}/runninghub/tasks"
        [entry] = requests.get(base, timeout=30).json()["tasks"]
        assert entry["status"] == "SUBMITTING"
        refused = requests.delete(f"{base}/{entry['entry']}", timeout=30)
        assert refused.status_code == 409 and "still submitting" in refused.json()["error"]
        other.kill()
        other.wait(timeout=30)
        [entry] = requests.get(base, timeout=30).json()["tasks"]
        assert entry["status"] == "MAY_EXIST"
        assert requests.delete(f"{base}/{entry['entry']}", timeout=30).status_code == 200
        assert requests.get(base, timeout=30).json()["tasks"] == []
    finally:
        other.kill()
        other.wait(timeout=30)
