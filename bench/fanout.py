"""fanout: 8 tasks of 2 s through one list-mapped RH Run Workflow on a pool of 4 keys ×
concurrency 2, inside a real ComfyUI, against the makespan of one such task.

The list comes from ComfyUI's "Load Image and Text Dataset from Folder" (one caption =
one seed) into RH Node Override, so ComfyUI calls the Run node once per seed, all at once.
Makespan: from ComfyUI's `executing` of RH Run Workflow to its `executing` of RH Fetch
Outputs (the node moves on once every run is done). With perfect fan-out the 8 runs take
as long as one; the ratio shows what scheduling, threads and polling add.

Run: `scripts/run-in-venv.sh python bench/fanout.py [--repeat 3]`
"""

from __future__ import annotations

import argparse
import secrets
import time

from PIL import Image

from common import WORKFLOWS, Simulator, bench_line, comfy_with_pack, median, span, table

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


def makespan(host, sim, count: int) -> dict:
    folder = seed_folder(host, count)
    since = time.time()
    result = host.run(sweep_graph(folder), timeout=600)
    if result.status != "success":
        raise RuntimeError(f"fan-out run failed: {result.error}")
    tasks = [t for t in sim.tasks() if t["created"] >= since]
    assert len(tasks) == count, f"{len(tasks)} tasks for {count} seeds"
    remote = max(t["finished"] for t in tasks) - min(t["created"] for t in tasks)
    return {"node": span(result, "13", "14"), "remote": remote, "keys": len({t["key"] for t in tasks})}


def run(sim: Simulator, host, repeat: int = 3) -> str:
    sim.configure(run_seconds=TASK_SECONDS, queue_seconds=0, concurrency=SLOTS)
    makespan(host, sim, 1)  # warm-up
    ones, fans = [], []
    for _ in range(repeat):
        ones.append(makespan(host, sim, 1))
        fans.append(makespan(host, sim, TASKS))
    value, floor = median(f["node"] for f in fans), median(o["node"] for o in ones)
    line = bench_line("fanout", value, floor, TARGET, tasks=TASKS, keys=KEYS, slots_per_key=SLOTS)
    table(["case", "node makespan s", "remote makespan s", "keys used"],
          [["1 task", floor, median(o["remote"] for o in ones), median(o["keys"] for o in ones)],
           [f"{TASKS} tasks", value, median(f["remote"] for f in fans), median(f["keys"] for f in fans)]])
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with Simulator(key_count=KEYS, concurrency=SLOTS) as sim, comfy_with_pack(sim, sim.keys) as host:
        run(sim, host, args.repeat)


if __name__ == "__main__":
    main()
