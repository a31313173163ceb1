"""notice_latency: how long after a remote task finishes the node moves on, and how many
polls a task costs.

Inside a real ComfyUI, RH Run Workflow → RH Fetch Outputs on the simulator's noise
workflow with a fixed run time. The remote finish is the simulator's own timestamp of the
task turning SUCCESS; "moved on" is ComfyUI's `executing` of RH Fetch Outputs, as received
over the websocket (both clocks are this machine's wall clock). Polls are the simulator's
count of outputs requests.

- short (1 s tasks): `--short` prompts one after another; the BENCH value is their median.
- long (60 s tasks): `--long` runs at once in one prompt (a list of seeds over a key pool),
  twice, on a workflow of their own: the first time the pack knows nothing of its running
  time, the second time it has learned it (client/polling.py places the polls around the
  expected end). Polls per task against the allowance of one poll per 3 s; the BENCH line
  shows the worse of the two.
- first long run (20 s task, `--first-seconds`), once following the task's websocket and
  once with the simulator's socket off (polling alone), each on a workflow the pack has
  never run: how late the node moves on, and outputs polls per 10 s of running (with the
  socket the wait polls only at its 10 s heartbeat and when the socket says it ended).
- floor: a bare script that polls outputs every 20 ms notices the same 1 s task this late
  (mostly the simulator's own time to publish the outputs).

Run: `scripts/run-in-venv.sh python bench/notice_latency.py [--short 7] [--long 2] [--long-seconds 60]`
"""

from __future__ import annotations

import argparse
import secrets
import time

import requests
from PIL import Image

from common import (BENCH_WORKFLOWS, WORKFLOWS, Simulator, bench_line, bench_simulator, comfy_with_pack, event_time,
                    median, table, wall_of)

TARGET = "value<=0.3s,polls_per_3s<=1,first_socket_s<=0.3,first_socket_polls_per_10s<=1"
POLL_GAP = 0.02  # the floor's polls: back to back would slow the simulator itself down


def seed_folder(host, seeds: list[int]) -> str:
    name = f"latency-{secrets.token_hex(4)}"
    folder = host.input_dir / name
    folder.mkdir()
    for i, seed in enumerate(seeds):
        Image.new("RGB", (4, 4)).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(str(seed))
    return name


def graph(seed_source, run_seed: int, workflow_id: str = WORKFLOWS["noise"]) -> dict:
    """Run → Fetch on a noise workflow; `seed_source` is a seed, or a link to a list of seed texts."""
    override = ({"text_value": str(seed_source)} if isinstance(seed_source, int) else {"text_value": seed_source})
    g = {
        "12": {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "seed", **override}},
        "13": {"class_type": "RHRunWorkflow", "inputs": {"workflow_id": workflow_id, "overrides": ["12", 0],
                                                         "account": "default", "kind": "workflow",
                                                         "instance_type": "default", "seed": run_seed}},
        "14": {"class_type": "RHFetchOutputs", "inputs": {"task": ["13", 0], "account": "default",
                                                          "size_policy": "pad"}},
    }
    return g


def finished_times(sim, since: float) -> list[float]:
    return sorted(t["finished"] for t in sim.tasks() if t["created"] >= since and t["status"] == "SUCCESS")


def pack_short(host, sim, n: int) -> tuple[list[float], list[int]]:
    latencies, polls = [], []
    for i in range(n):
        since = time.time()
        before = sim.count("outputs")
        result = host.run(graph(secrets.randbelow(2 ** 40), secrets.randbelow(2 ** 40)), timeout=120)
        if result.status != "success":
            raise RuntimeError(f"run failed: {result.error}")
        [finished] = finished_times(sim, since)
        latencies.append(wall_of(event_time(result, "executing", "14")) - finished)
        polls.append(sim.count("outputs") - before)
    return latencies, polls


def pack_long(host, sim, n: int) -> tuple[list[float], float]:
    since = time.time()
    before = sim.count("outputs")
    folder = seed_folder(host, [secrets.randbelow(2 ** 40) for _ in range(n)])
    g = graph(["1", 1], secrets.randbelow(2 ** 40), BENCH_WORKFLOWS["noise_long"])
    g["1"] = {"class_type": "LoadImageTextDataSetFromFolder", "inputs": {"folder": folder}}
    result = host.run(g, timeout=600)
    if result.status != "success":
        raise RuntimeError(f"run failed: {result.error}")
    tasks = [t for t in sim.tasks() if t["created"] >= since]
    # The node moves on once all its runs are done, so each run's own notice is the receipt
    # of its SUCCESS status event.
    notices = {e.data["task_id"]: wall_of(e.t) for e in result.events_of("runninghub.status")
               if e.data.get("state") == "SUCCESS"}
    latencies = [notices[t["taskId"]] - t["finished"] for t in tasks]
    return latencies, (sim.count("outputs") - before) / len(tasks)


def pack_first_long(host, sim, workflow_id: str, seconds: float, websocket: str) -> tuple[float, float]:
    """(notice s, outputs polls per 10 s) of one task of `seconds` on a workflow never run."""
    sim.configure(run_seconds=seconds, websocket=websocket)
    since = time.time()
    before = sim.count("outputs")
    result = host.run(graph(secrets.randbelow(2 ** 40), secrets.randbelow(2 ** 40), workflow_id), timeout=seconds + 120)
    if result.status != "success":
        raise RuntimeError(f"run failed: {result.error}")
    [finished] = finished_times(sim, since)
    return wall_of(event_time(result, "executing", "14")) - finished, (sim.count("outputs") - before) / (seconds / 10)


def floor_short(sim, n: int) -> list[float]:
    session = requests.Session()
    key = sim.keys[0]
    out = []
    for _ in range(n):
        created = session.post(sim.base_url + "/task/openapi/create", timeout=30, json={
            "apiKey": key, "workflowId": WORKFLOWS["noise"],
            "nodeInfoList": [{"nodeId": "1", "fieldName": "seed", "fieldValue": secrets.randbelow(2 ** 40)}]}).json()
        task_id = created["data"]["taskId"]
        while True:
            reply = session.post(sim.base_url + "/task/openapi/outputs", json={"apiKey": key, "taskId": task_id},
                                 timeout=30).json()
            if reply["code"] == 0 and isinstance(reply["data"], list):
                noticed = time.time()
                break
            time.sleep(POLL_GAP)
        out.append(noticed - sim.task(task_id)["finished"])
    return out


def run(sim: Simulator, host, short: int = 7, long: int = 2, long_seconds: float = 60.0,
        first_seconds: float = 20.0) -> str:
    sim.configure(run_seconds=1.0, queue_seconds=0)
    pack_short(host, sim, 1)  # warm-up (and the 1 s workflow's running time is learned)
    short_lat, short_polls = pack_short(host, sim, short)
    floor = floor_short(sim, max(3, short // 2))
    sim.configure(run_seconds=long_seconds)
    first_lat, first_polls = pack_long(host, sim, long)  # nothing learned about this workflow yet
    learned_lat, learned_polls = pack_long(host, sim, long)
    socket_lat, socket_polls = pack_first_long(host, sim, BENCH_WORKFLOWS["noise_first_socket"], first_seconds, "on")
    polling_lat, polling_polls = pack_first_long(host, sim, BENCH_WORKFLOWS["noise_first_polling"], first_seconds,
                                                 "off")
    sim.configure(run_seconds=0, websocket="on")
    allowance = long_seconds / 3.0
    line = bench_line("notice_latency", median(short_lat), median(floor), TARGET,
                      polls_per_3s=round(max(first_polls, learned_polls) / allowance, 3),
                      polls_per_3s_first=round(first_polls / allowance, 3),
                      polls_per_3s_learned=round(learned_polls / allowance, 3),
                      long_median_s=round(median(learned_lat), 3),
                      first_socket_s=round(socket_lat, 3), first_socket_polls_per_10s=round(socket_polls, 3),
                      first_polling_s=round(polling_lat, 3), first_polling_polls_per_10s=round(polling_polls, 3))
    table(["case", "tasks", "median notice s", "max notice s", "polls per task", "polls per 3 s"],
          [["1 s tasks", short, median(short_lat), max(short_lat), median(short_polls), "-"],
           [f"{long_seconds:.0f} s tasks, first run", long, median(first_lat), max(first_lat), first_polls,
            first_polls / allowance],
           [f"{long_seconds:.0f} s tasks, learned", long, median(learned_lat), max(learned_lat), learned_polls,
            learned_polls / allowance],
           [f"{first_seconds:.0f} s task, first run, socket", 1, socket_lat, socket_lat,
            socket_polls * first_seconds / 10, socket_polls * 0.3],
           [f"{first_seconds:.0f} s task, first run, polling only", 1, polling_lat, polling_lat,
            polling_polls * first_seconds / 10, polling_polls * 0.3],
           ["floor: polling every 20 ms, 1 s", len(floor), median(floor), max(floor), "-", "-"]])
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=7)
    parser.add_argument("--long", type=int, default=2)
    parser.add_argument("--long-seconds", type=float, default=60.0)
    parser.add_argument("--first-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with bench_simulator(key_count=4, concurrency=2) as sim, comfy_with_pack(sim, sim.keys) as host:
        run(sim, host, args.short, args.long, args.long_seconds, args.first_seconds)


if __name__ == "__main__":
    main()
