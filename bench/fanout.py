"""fanout: 8 tasks of 2 s on a pool of 4 keys × concurrency 2, inside a real ComfyUI,
against the makespan of one such task; once through one list-mapped RH Run Workflow, once
as 8 independent Override → Run → Fetch branches of one graph.

The list comes from ComfyUI's "Load Image and Text Dataset from Folder" (one caption =
one seed) into RH Node Override, so ComfyUI calls the Run node once per seed, all at once.
Makespan: from ComfyUI's `executing` of RH Run Workflow to its `executing` of RH Fetch
Outputs (the node moves on once every run is done). With perfect fan-out the 8 runs take
as long as one; the ratio shows what scheduling, threads and polling add. For the
branches, from the first branch's Run `executing` to the last branch's Fetch `executing`:
ComfyUI runs async nodes of independent branches side by side.

Run: `scripts/run-in-venv.sh python bench/fanout.py [--repeat 3]`
"""

from __future__ import annotations

import argparse
import secrets
import time

from PIL import Image

from common import WORKFLOWS, Simulator, bench_line, comfy_with_pack, event_time, median, span, table

TARGET = "ratio<=1.3"
TASK_SECONDS = 2.0
KEYS = 4
SLOTS = 2
TASKS = 8


def seed_folder(host, count: int) -> str:
    name = f"fanout-{secrets.token_hex(4)}"
    folder = host.input_dir / name
    folder.mkdir()
    for i in range(count):
        Image.new("RGB", (4, 4)).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(str(secrets.randbelow(2 ** 40)))
    return name


def sweep_graph(folder: str) -> dict:
    return {
        "1": {"class_type": "LoadImageTextDataSetFromFolder", "inputs": {"folder": folder}},
        "12": {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "seed", "text_value": ["1", 1]}},
        "13": {"class_type": "RHRunWorkflow", "inputs": {"workflow_id": WORKFLOWS["noise"], "overrides": ["12", 0],
                                                         "account": "default", "kind": "workflow",
                                                         "instance_type": "default",
                                                         "seed": secrets.randbelow(2 ** 40)}},
        "14": {"class_type": "RHFetchOutputs", "inputs": {"task": ["13", 0], "account": "default",
                                                          "size_policy": "pad"}},
    }


def branches_graph(count: int) -> tuple[dict, list[str], list[str]]:
    """`count` independent Override → Run → Fetch branches: (graph, run ids, fetch ids)."""
    graph, runs, fetches = {}, [], []
    for i in range(count):
        override, run_id, fetch = (str(100 + 3 * i + k) for k in range(3))
        graph[override] = {"class_type": "RHNodeOverride",
                           "inputs": {"node_id": "1", "field_name": "seed",
                                      "text_value": str(secrets.randbelow(2 ** 40))}}
        graph[run_id] = {"class_type": "RHRunWorkflow",
                         "inputs": {"workflow_id": WORKFLOWS["noise"], "overrides": [override, 0],
                                    "account": "default", "kind": "workflow", "instance_type": "default",
                                    "seed": secrets.randbelow(2 ** 40)}}
        graph[fetch] = {"class_type": "RHFetchOutputs",
                        "inputs": {"task": [run_id, 0], "account": "default", "size_policy": "pad"}}
        runs.append(run_id)
        fetches.append(fetch)
    return graph, runs, fetches


def _measured(result, sim, since: float, count: int, node_seconds: float) -> dict:
    if result.status != "success":
        raise RuntimeError(f"fan-out run failed: {result.error}")
    tasks = [t for t in sim.tasks() if t["created"] >= since]
    assert len(tasks) == count, f"{len(tasks)} tasks for {count} runs"
    remote = max(t["finished"] for t in tasks) - min(t["created"] for t in tasks)
    return {"node": node_seconds, "remote": remote, "keys": len({t["key"] for t in tasks})}


def makespan(host, sim, count: int) -> dict:
    folder = seed_folder(host, count)
    since = time.time()
    result = host.run(sweep_graph(folder), timeout=600)
    return _measured(result, sim, since, count, span(result, "13", "14") if result.status == "success" else 0.0)


def branches_makespan(host, sim, count: int) -> dict:
    graph, runs, fetches = branches_graph(count)
    since = time.time()
    result = host.run(graph, timeout=600)
    seconds = 0.0
    if result.status == "success":
        seconds = (max(event_time(result, "executing", f) for f in fetches)
                   - min(event_time(result, "executing", r) for r in runs))
    return _measured(result, sim, since, count, seconds)


def run(sim: Simulator, host, repeat: int = 3) -> str:
    sim.configure(run_seconds=TASK_SECONDS, queue_seconds=0, concurrency=SLOTS)
    makespan(host, sim, 1)  # warm-up
    ones, fans, branches = [], [], []
    for _ in range(repeat):
        ones.append(makespan(host, sim, 1))
        fans.append(makespan(host, sim, TASKS))
        branches.append(branches_makespan(host, sim, TASKS))
    floor = median(o["node"] for o in ones)
    value, branched = median(f["node"] for f in fans), median(b["node"] for b in branches)
    line = bench_line("fanout", value, floor, TARGET, tasks=TASKS, keys=KEYS, slots_per_key=SLOTS)
    bench_line("fanout_branches", branched, floor, TARGET, tasks=TASKS, keys=KEYS, slots_per_key=SLOTS)
    table(["case", "node makespan s", "remote makespan s", "keys used"],
          [["1 task", floor, median(o["remote"] for o in ones), median(o["keys"] for o in ones)],
           [f"{TASKS} tasks, list-mapped", value, median(f["remote"] for f in fans), median(f["keys"] for f in fans)],
           [f"{TASKS} tasks, branches", branched, median(b["remote"] for b in branches),
            median(b["keys"] for b in branches)]])
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with Simulator(key_count=KEYS, concurrency=SLOTS) as sim, comfy_with_pack(sim, sim.keys) as host:
        run(sim, host, args.repeat)


if __name__ == "__main__":
    main()
