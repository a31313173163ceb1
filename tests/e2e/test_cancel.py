"""Cancel inside a real ComfyUI: an interrupt at any moment of a run cancels the remote task
(the simulator's own task state says so) within a second, and transient trouble on the
status and outputs endpoints never abandons a running task."""

from __future__ import annotations

import json
import signal
import time

import pytest

from support.comfy_host import interrupt_after
from support.graphs import run_fetch
from support.ledger_view import ledger_rows
from support.simulator import WORKFLOWS, Simulator

pytestmark = pytest.mark.e2e

#: 40 interrupt offsets from 0.2 s to 4 s after the Run node starts, whole seconds
#: included: progress reports go out about once a second, which is where cancels were lost.
OFFSETS = sorted([round(0.2 + 0.1 * i, 1) for i in range(39)] + [0.25])
CANCEL_WITHIN = 1.0  # seconds from the interrupt to the remote task cancelled


@pytest.fixture(scope="module")
def sim():
    with Simulator(run_seconds=60, concurrency=2) as s:
        yield s


@pytest.fixture(scope="module")
def host(sim, comfy_host_factory):
    return comfy_host_factory(env=sim.pack_env(),
                              name="cancel")


@pytest.fixture(autouse=True)
def _fresh_each_test(fresh):
    """Every test starts from the simulator's start state on an idle ComfyUI."""


def test_an_interrupt_at_any_moment_cancels_every_remote_task(host, sim):
    assert len(OFFSETS) == 40 and {1.0, 2.0, 3.0, 4.0} <= set(OFFSETS)
    problems = []
    for offset in OFFSETS:
        sim.reset()
        hook, sent = interrupt_after(host, "13", offset)
        result = host.run(run_fetch(WORKFLOWS["empty"], save_images=False), timeout=60, on_event=hook)
        time.sleep(0.2)  # a cancel sent just before the prompt ended reaches the simulator
        tasks = sim.tasks()
        if result.status != "interrupted":
            problems.append(f"offset {offset}: the prompt ended {result.status} ({result.error})")
        for task in tasks:
            if not task["cancelled"]:
                problems.append(f"offset {offset}: task {task['taskId']} left {task['status']}")
            elif task["finished"] - sent[0] > CANCEL_WITHIN:
                problems.append(f"offset {offset}: task {task['taskId']} cancelled "
                                f"{task['finished'] - sent[0]:.2f} s after the interrupt")
        if offset >= 1.0 and not tasks:
            problems.append(f"offset {offset}: no task was created before the interrupt")
    assert not problems, f"{len(problems)} of {len(OFFSETS)} interrupts went wrong:\n" + "\n".join(problems)


def test_503_bursts_and_resets_mid_run_are_ridden_out_with_one_create(host, sim):
    sim.configure(run_seconds=3)
    armed = []

    def arm_when_running(event):
        if event.type == "runninghub.status" and event.data.get("state") == "RUNNING" and not armed:
            armed.append(True)
            for endpoint in ("outputs", "status"):
                sim.fault(endpoint, "http_error", count=6, status=503)
                sim.fault(endpoint, "reset_before", count=4)

    result = host.run(run_fetch(WORKFLOWS["empty"]), timeout=120, on_event=arm_when_running)
    assert armed and result.status == "success", result.error
    assert sim.count("create") == 1 and sim.count("cancel") == 0
    assert len(result.images("15")) == 2  # the empty workflow's batch of two, fetched and saved
    texts = " ".join(result.progress_texts("13"))
    assert "not answering, still waiting" in texts


def test_an_interrupt_ends_a_trickling_download(host, sim):
    sim.configure(run_seconds=0.2)
    sim.fault("files", "slow_body", count=10, chunk=1, delay=1.0)  # one byte a second
    hook, sent = interrupt_after(host, "14", 1.0)  # RH Fetch Outputs is downloading by then
    result = host.run(run_fetch(WORKFLOWS["empty"]), timeout=120, on_event=hook)
    assert sent and result.status == "interrupted", (result.error or {}).get("exception_message")
    ended = next(e.t for e in result.events if e.type == "execution_interrupted")
    interrupted_at = sent[0] - time.time() + time.monotonic()  # the same moment, on the events' clock
    assert ended - interrupted_at < 2.0  # it held the node 34 s before


def wait_for_running_task(sim, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [t for t in sim.tasks() if t["status"] == "RUNNING"]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError(f"no task running after {timeout} s: {sim.tasks()}")


def handed_over(host, sig) -> bool:
    """ComfyUI took the signal over from the pack: SIGTERM ends the process at once; after
    SIGINT, ComfyUI logs "Stopped server" and the interpreter winds down (3.5 to 7 s of
    garbage collection on two loaded cores, the same without the pack)."""
    return not host.running or (sig == signal.SIGINT and "Stopped server" in host.log_text())


@pytest.mark.parametrize("sig, on_shutdown", [(signal.SIGINT, "cancel"), (signal.SIGTERM, "cancel"),
                                              (signal.SIGINT, "leave")])
def test_stopping_comfyui_mid_run_hands_over_within_2_s(sim, comfy_host_factory, sig, on_shutdown):
    env = sim.pack_env()
    if on_shutdown == "leave":
        env["RUNNINGHUB_ON_SHUTDOWN"] = "leave"
    host = comfy_host_factory(env=env, fresh=True, name=f"stop-{sig.name}")
    host.queue_prompt(run_fetch(WORKFLOWS["empty"], save_images=False))
    task = wait_for_running_task(sim)
    sent = time.monotonic()
    host.send_signal(sig)
    while not handed_over(host, sig) and time.monotonic() - sent < 10:
        time.sleep(0.02)
    took = time.monotonic() - sent
    assert took < 2.0, f"ComfyUI still busy {took:.1f} s after {sig.name}:\n{host.log_tail()}"
    assert host.wait_exit(20) is not None, "ComfyUI did not exit"  # it hung until the remote task ended
    [after] = [t for t in sim.tasks() if t["taskId"] == task["taskId"]]
    if on_shutdown == "leave":
        assert after["status"] == "RUNNING" and "left running" in host.log_text()
    else:
        assert after["cancelled"] is True, host.log_tail()
        assert after["finished"] - task["started"] < 60 - 1  # cancelled, not run to its end
    assert "cannot schedule new futures" not in host.log_text()


@pytest.mark.parametrize("on_shutdown", ["cancel", "leave"])
def test_stopping_comfyui_while_a_create_waits_for_its_reply(sim, comfy_host_factory, on_shutdown):
    """SIGTERM while a create's reply is on its way (3 s here, past the 1.5 s grace): only
    that reply names the task it made, so the pack waits for it (up to 6 s) and then
    cancels the task, or records it when tasks are left running; it used to exit at once,
    leaving a billed task nobody knew the id of ("may exist" after the restart)."""
    env = sim.pack_env(RUNNINGHUB_ON_SHUTDOWN=on_shutdown)
    host = comfy_host_factory(env=env, fresh=True, name=f"stop-create-{on_shutdown}")
    sim.fault("create", "delay", seconds=3, commit=True)
    host.queue_prompt(run_fetch(WORKFLOWS["empty"], save_images=False))
    deadline = time.monotonic() + 60
    while not sim.tasks() and time.monotonic() < deadline:  # the create has arrived; its reply is held back
        time.sleep(0.02)
    sent = time.monotonic()
    host.send_signal(signal.SIGTERM)
    assert host.wait_exit(20) is not None, "ComfyUI did not exit"
    took = time.monotonic() - sent
    assert 2.5 < took < 7.5, f"{took:.1f} s:\n{host.log_tail()}"
    [task] = sim.tasks()
    [entry] = ledger_rows(host)
    assert entry["task_id"] == task["taskId"]  # the ledger knows the task: a restart can find it
    if on_shutdown == "cancel":
        assert task["cancelled"] is True and entry["status"] == "CANCEL", host.log_tail()
    else:
        assert task["status"] in ("QUEUED", "RUNNING") and entry["status"] in ("QUEUED", "RUNNING")


def fetch_by_id(task_id: str) -> dict:
    """RH Fetch Outputs (node 1) of a task by its id → Save Image."""
    return {"1": {"class_type": "RHFetchOutputs", "inputs": {"task_id": task_id, "account": "default",
                                                             "size_policy": "pad"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "fetched"}}}


def test_a_fetch_abandoned_by_comfyui_stops_following_the_task_and_leaves_it_running(host, sim):
    """RH Fetch Outputs waits for a running task when another node of the prompt fails:
    ComfyUI abandons the fetch, which must stop following the task (its socket closes) and let
    the prompt end, rather than hold ComfyUI's queue until the task ends (a wait in asyncio's
    default executor is joined when the prompt ends). The task itself runs on: this prompt did
    not start it, and fetching it again later gets its outputs."""
    from support.clients import make_client

    task_id = make_client(sim).create_task(WORKFLOWS["empty"]).task_id
    graph = {**fetch_by_id(task_id),
             # a local branch that fails after a second or more of work (a prefix outside the output folder)
             "20": {"class_type": "EmptyImage", "inputs": {"width": 2048, "height": 2048, "batch_size": 1,
                                                          "color": 5}},
             "21": {"class_type": "ImageBlur", "inputs": {"image": ["20", 0], "blur_radius": 10, "sigma": 3.0}},
             "22": {"class_type": "ImageBlur", "inputs": {"image": ["21", 0], "blur_radius": 10, "sigma": 3.0}},
             "30": {"class_type": "SaveImage", "inputs": {"images": ["22", 0], "filename_prefix": "../../escape"}}}
    result = host.run(graph, timeout=30)  # the task runs for 60 s
    assert result.status == "error" and result.error["node_id"] == "30", result.error
    assert f"websocket for task {task_id} (key" in sim.log_text()  # the fetch was following it
    sim.wait_for(lambda: f"websocket for task {task_id} closed" in sim.log_text(), timeout=5, interval=0.1)
    task = sim.task(task_id)
    assert not task["finished"] and not task["cancelled"], task["status"]


def test_an_interrupted_fetch_leaves_a_task_it_did_not_start_running(host, sim):
    """Cancel while RH Fetch Outputs waits for a task by id stops the wait, not the task: the
    node says the task was left running, and a second fetch gets its outputs."""
    from support.clients import make_client

    sim.configure(run_seconds=4)
    task_id = make_client(sim).create_task(WORKFLOWS["empty"]).task_id
    graph = fetch_by_id(task_id)
    hook, _sent = interrupt_after(host, "1", 1.0)
    result = host.run(graph, timeout=30, on_event=hook)
    assert result.status == "interrupted", result.error
    lines = [e.data.get("line", "") for e in result.events if e.type == "runninghub.status"]
    task = sim.task(task_id)
    assert not task["cancelled"], (task["status"], lines)
    assert f"task {task_id} was left running" in lines[-1], lines
    again = host.run(graph, timeout=30)
    assert again.status == "success", again.error
    assert sim.task(task_id)["status"] == "SUCCESS" and sim.count("create") == 1


@pytest.mark.parametrize("moment", ["create", "cancel"])
def test_an_interrupt_never_holds_the_queue_for_a_slow_reply(host, sim, moment):
    """An Interrupt while a create's reply is on its way (it names the task to cancel), or
    while the cancel's reply is slow: the node ends within STOP_GRACE (2 s) and the next
    prompt can start; the run's thread finishes in the background, cancels the task exactly
    once, and its end still shows under the node."""
    sim.fault(moment, "delay", seconds=8, commit=True)
    hook, sent = interrupt_after(host, "13", 1.5 if moment == "create" else 2.0)
    result = host.run(run_fetch(WORKFLOWS["empty"], save_images=False), timeout=60, on_event=hook)
    ended = time.time()
    assert result.status == "interrupted", result.error
    assert ended - sent[0] < 3.5, f"the prompt ended {ended - sent[0]:.1f} s after the interrupt"
    # the late end (seconds after the node ended) reaches the same front end: no other prompt ran since
    ws, _ = host.open_ws(result.client_id)
    try:
        ws.settimeout(15)
        ends: list[dict] = []
        while not ends:
            frame = ws.recv()
            message = json.loads(frame) if isinstance(frame, str) else {}
            if message.get("type") == "runninghub.status" and message["data"].get("node") == "13" \
                    and message["data"]["state"] in ("CANCEL", "FAILED"):
                ends.append(message["data"])
    finally:
        ws.close()
    (task,) = sim.tasks()
    assert task["cancelled"] and sim.count("create") == 1 and sim.count("cancel") == 1
    assert ends[0]["state"] == "CANCEL" and f"task {task['taskId']} was cancelled" in ends[0]["line"], ends


def test_a_fetch_asking_a_pools_keys_for_a_task_is_stopped_at_once(sim, comfy_host_factory):
    """RH Fetch Outputs by the id of a task the ledger does not know, on a profile of two keys:
    the pack asks the keys which one knows it. That lookup runs under the node's stop too, off
    ComfyUI's loop, so an Interrupt ends it at once (and leaves the task running)."""
    from support.clients import make_client

    host = comfy_host_factory(env={**sim.pack_env(), "RUNNINGHUB_API_KEY": ",".join(sim.keys)}, name="cancel-pool")
    task_id = make_client(sim, key_index=1).create_task(WORKFLOWS["empty"]).task_id
    sim.fault("status", "delay", seconds=12, commit=True)
    graph = fetch_by_id(task_id)
    hook, sent = interrupt_after(host, "1", 1.0)
    result = host.run(graph, timeout=60, on_event=hook)
    assert result.status == "interrupted", result.error
    assert time.time() - sent[0] < 2.0
    assert not sim.task(task_id)["cancelled"]


def test_a_scripts_prompt_sends_no_progress_to_other_pages(host, sim):
    """A prompt queued without a client id (a script): ComfyUI would send whatever the pack
    sends for it to every open page, so it sends nothing, progress bar included."""
    sim.configure(run_seconds=2)
    ws, _ = host.open_ws()  # another page's socket
    try:
        ws.settimeout(0.5)
        prompt_id = host.post("/prompt", json={"prompt": run_fetch(WORKFLOWS["empty"], save_images=False)}
                              ).json()["prompt_id"]
        seen, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and not host.history(prompt_id):
            try:
                frame = ws.recv()
            except Exception:  # noqa: BLE001 - a quiet half second
                continue
            seen.append(json.loads(frame) if isinstance(frame, str) else {"type": "binary", "data": {}})
    finally:
        ws.close()
    assert host.history(prompt_id), "the prompt did not finish"
    # ComfyUI's own progress_state (each node starting and ending) goes to every page for such a prompt
    ours = [m for m in seen if m["type"] in ("runninghub.status", "progress_text", "binary")
            or (m["type"] == "progress" and m["data"].get("node") == "13")
            or (m["type"] == "progress_state" and m["data"].get("nodes", {}).get("13", {}).get("max") == 100)]
    assert ours == [], ours
