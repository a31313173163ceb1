"""Sweeps inside a real ComfyUI: an RH Node Override fed a list of seeds (the captions of
ComfyUI's own "Load Image and Text Dataset from Folder" node) makes RH Run Workflow run
once per seed, side by side over the key pool, against the simulator's seeded-noise
workflow, whose every output can be checked against its seed."""

from __future__ import annotations

import io
import json
import secrets
import threading

import numpy as np
import pytest
from PIL import Image

from support.clients import make_client
from support.graphs import fresh_seed, run_fetch
from support.simulator import WORKFLOWS, Simulator

pytestmark = pytest.mark.e2e

NOISE_SIZE = 32  # the noise workflow's width and height


@pytest.fixture(scope="module")
def sim():
    with Simulator(key_count=8, run_seconds=0.3, concurrency=2) as s:
        yield s


@pytest.fixture(scope="module")
def credentials_file(tmp_path_factory, sim):
    """Profile `flaky`: four more keys of the same simulator, for the test that breaks one."""
    path = tmp_path_factory.mktemp("rh-credentials") / "credentials.json"
    path.write_text(json.dumps({"version": 1, "profiles": {"flaky": {"site": "cn", "keys": sim.keys[4:8]}}}))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def host(sim, credentials_file, comfy_host_factory):
    return comfy_host_factory(env={"RUNNINGHUB_BASE_URL": sim.base_url,
                                   "RUNNINGHUB_API_KEY": ",".join(sim.keys[:4]),
                                   "RUNNINGHUB_CREDENTIALS_FILE": str(credentials_file)}, name="sweep")


@pytest.fixture(autouse=True)
def _fresh_each_test(fresh):
    """Every test starts from the simulator's start state on an idle ComfyUI."""


def seed_folder(host, seeds: list[int]) -> str:
    """A folder in ComfyUI's input with one tiny picture and one caption (the seed) per seed."""
    name = f"seeds-{secrets.token_hex(4)}"
    folder = host.input_dir / name
    folder.mkdir()
    for i, seed in enumerate(seeds):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(str(seed))
    return name


def sweep_graph(folder: str, *, account: str = "default") -> dict:
    return {
        "1": {"class_type": "LoadImageTextDataSetFromFolder", "inputs": {"folder": folder}},
        "12": {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "seed",
                                                          "text_value": ["1", 1]}},
        "13": {"class_type": "RHRunWorkflow", "inputs": {"workflow_id": WORKFLOWS["noise"], "overrides": ["12", 0],
                                                         "account": account, "kind": "workflow",
                                                         "instance_type": "default", "seed": fresh_seed()}},
        "14": {"class_type": "RHFetchOutputs", "inputs": {"task": ["13", 0], "account": account,
                                                          "size_policy": "pad"}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": f"sweep-{folder}"}},
    }


def expected_noise(seed: int) -> np.ndarray:
    """What the simulator's SimNoiseImage → SaveImage makes of a seed (see rhsim/executors/builtin.py)."""
    pixels = np.random.default_rng(seed).random((1, NOISE_SIZE, NOISE_SIZE, 3), dtype=np.float32)[0]
    return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


def saved_images(host, result, node_id: str = "15") -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.view_bytes(i["filename"], i["subfolder"], i["type"]))))[..., :3]
            for i in result.images(node_id)]


def match_outputs_to_seeds(images: list[np.ndarray], seeds: list[int]) -> dict[int, int]:
    """Output index → the seed whose noise it is exactly; fails unless it is one to one."""
    expected = {seed: expected_noise(seed) for seed in seeds}
    found = {}
    for n, image in enumerate(images):
        hits = [seed for seed, pixels in expected.items() if np.array_equal(image, pixels)]
        assert len(hits) == 1, f"output {n} matches no seed (or several): {hits}"
        found[n] = hits[0]
    assert sorted(found.values()) == sorted(seeds), "some seed has no output, or two outputs"
    return found


def peak_overlap(tasks: list[dict]) -> int:
    events = sorted([(t["created"], 1) for t in tasks] + [(t["finished"], -1) for t in tasks],
                    key=lambda e: (e[0], e[1]))
    peak = level = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def seeds_of(tasks: list[dict]) -> list[int]:
    return sorted(o["fieldValue"] for t in tasks for o in t["overrides"] if o["fieldName"] == "seed")


def test_a_32_seed_sweep_over_a_4_key_pool(host, sim):
    seeds = [fresh_seed() for _ in range(32)]
    result = host.run(sweep_graph(seed_folder(host, seeds)), timeout=300)
    assert result.status == "success", result.error

    match_outputs_to_seeds(saved_images(host, result), seeds)  # every output is its seed's noise, exactly
    tasks = sim.tasks()
    assert sim.count("create") == 32 and len(tasks) == 32  # exactly one create per seed
    assert seeds_of(tasks) == sorted(seeds)
    per_key: dict[str, list[dict]] = {}
    for t in tasks:
        per_key.setdefault(t["key"], []).append(t)
    assert set(per_key) == {sim.redacted(k) for k in sim.keys[:4]}  # the whole pool, and only it
    assert all(peak_overlap(ts) <= 2 for ts in per_key.values())  # never over a key's slots
    assert peak_overlap(tasks) > 2  # runs went side by side, beyond one key

    final = result.progress_texts("13")[-1].splitlines()  # one status line per run
    assert len(final) == 32
    assert [line.split(" ", 1)[0] for line in final] == [f"#{i}" for i in range(1, 33)]
    assert all(": done" in line for line in final)
    statuses = [e.data for e in result.events_of("runninghub.status") if e.data["node"] == "13"]
    assert sorted({s["index"] for s in statuses}) == list(range(32))
    done = {s["task_id"] for s in statuses if s["state"] == "SUCCESS"}
    assert done == {t["taskId"] for t in tasks}


def test_interrupt_cancels_every_remote_task_of_the_sweep(host, sim):
    sim.configure(run_seconds=60)
    seeds = [fresh_seed() for _ in range(12)]
    running: set[str] = set()
    interrupted = threading.Event()

    def on_event(event):
        if event.type == "runninghub.status" and event.data.get("state") == "RUNNING":
            running.add(event.data["task_id"])
            if len(running) == 8 and not interrupted.is_set():  # every slot of the pool busy, 4 runs waiting
                interrupted.set()
                threading.Thread(target=host.interrupt, daemon=True).start()

    result = host.run(sweep_graph(seed_folder(host, seeds)), timeout=120, on_event=on_event)
    assert interrupted.is_set(), [(e.type, str(e.data)[:160]) for e in result.events][-20:]
    assert result.status == "interrupted"
    host.wait_idle()
    tasks = sim.tasks()
    assert len(tasks) == 8 and sim.count("create") == 8  # the 4 that waited for a key created nothing
    assert all(t["cancelled"] and t["status"] == "FAILED" for t in tasks)
    assert sim.count("cancel") == 8
    texts = result.progress_texts("13")[-1]
    assert texts.count("nothing was created") == 4 and texts.count("was cancelled") == 8


def test_a_key_out_of_coins_mid_sweep_leaves_the_pool_and_the_sweep_completes(host, sim):
    sim.configure(run_seconds=0.5)
    seeds = [fresh_seed() for _ in range(24)]
    poor = sim.keys[5]
    broke = threading.Event()

    def on_event(event):
        if event.type == "runninghub.status" and event.data.get("state") == "SUBMITTED" and not broke.is_set():
            broke.set()
            sim.configure(keys={poor: {"coins": 0}})

    result = host.run(sweep_graph(seed_folder(host, seeds), account="flaky"), timeout=300, on_event=on_event)
    assert result.status == "success", result.error
    match_outputs_to_seeds(saved_images(host, result), seeds)
    tasks = sim.tasks()
    assert len(tasks) == 24 and seeds_of(tasks) == sorted(seeds)  # none lost, none twice
    hint = sim.redacted(poor)
    refused = sim.count("create", key=poor) - sum(1 for t in tasks if t["key"] == hint)
    assert 1 <= refused <= 2  # at most one try per slot of that key, then never again
    assert sim.count("create") == 24 + refused
    warning = f"RunningHub key {hint} taken out of the pool: out of coins (416)."
    assert warning in result.progress_texts("13")[-1].splitlines()[0]
    assert any(e.data.get("state") == "WARNING" and warning in e.data["warning"]
               for e in result.events_of("runninghub.status"))
    log = host.log_text()
    assert warning in log
    assert all(key not in log for key in sim.keys)


def test_a_failing_branch_stops_the_remote_task_of_another_branch(host, sim):
    """When one node fails, ComfyUI ends the prompt and abandons the Run nodes still
    waiting: their remote tasks are cancelled instead of running on (and billing) unseen."""
    sim.configure(run_seconds=60)
    client = make_client(sim, 0)
    doomed = client.create_task(WORKFLOWS["empty"])  # branch a re-attaches to it; the test cancels it
    graph = {"a14": {"class_type": "RHFetchOutputs", "inputs": {"task_id": doomed.task_id, "account": "default",
                                                                "size_policy": "pad"}},
             **run_fetch(WORKFLOWS["empty"], prefix="b", save_prefix="b")}
    running = threading.Event()

    def on_event(event):
        if (event.type == "runninghub.status" and event.data.get("node") == "b13"
                and event.data.get("state") == "RUNNING" and not running.is_set()):
            running.set()
            threading.Thread(target=client.cancel, args=(doomed.task_id,), daemon=True).start()

    result = host.run(graph, timeout=120, on_event=on_event)
    assert running.is_set()
    assert result.status == "error" and result.error["node_id"] == "a14"
    assert "cancelled" in result.error["exception_message"]
    [other] = [t for t in sim.tasks() if t["taskId"] != doomed.task_id]
    sim.wait_for(lambda: sim.task(other["taskId"])["status"] != "RUNNING", timeout=15)
    assert sim.task(other["taskId"])["cancelled"] is True
    assert sim.count("create") == 2
