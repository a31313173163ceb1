"""cancel_latency: from Interrupt in ComfyUI to the remote task cancelled, and how many
cancels are lost.

Inside a real ComfyUI, RH Run Workflow → RH Fetch Outputs on a 60 s simulator task, one
prompt after another; each is interrupted at its own offset after the Run node starts
(`--count` offsets spread over 0.2 s to 4 s, whole seconds included: progress reports go
out about once a second). The latency is the simulator's timestamp of the task turning
cancelled minus the moment the interrupt was sent (both this machine's wall clock). A task
that is not cancelled by the time its prompt ended is lost.

- floor: a bare script's own cancel of a running task (POST cancel straight to the
  simulator): the simulator's part of the latency.
- value: the worst latency; the line also shows the median and the count lost.

Run: `scripts/run-in-venv.sh python bench/cancel_latency.py [--count 24]`
"""

from __future__ import annotations

import argparse
import time

import requests

from common import WORKFLOWS, Simulator, bench_line, bench_simulator, comfy_with_pack, median, table
from support.comfy_host import interrupt_after
from support.graphs import run_fetch

TARGET = "lost=0,worst<=1s"
RUN_SECONDS = 60.0


def offsets(count: int) -> list[float]:
    """`count` offsets from 0.2 s to 4 s: both ends, the whole seconds and the rest spread between."""
    fixed = {0.2, 1.0, 2.0, 3.0, 4.0}
    spread = {round(0.2 + 3.8 * (i + 0.5) / (count - len(fixed)), 2) for i in range(count - len(fixed))}
    return sorted(spread | fixed)


def bare_cancel(sim: Simulator, tries: int = 5) -> float:
    """Median seconds from a direct cancel request to the task's cancelled timestamp."""
    samples = []
    for _ in range(tries):
        sim.reset()
        sim.configure(run_seconds=RUN_SECONDS)
        created = requests.post(sim.base_url + "/task/openapi/create", timeout=10,
                                json={"apiKey": sim.keys[0], "workflowId": WORKFLOWS["empty"]}).json()
        task_id = created["data"]["taskId"]
        deadline = time.monotonic() + 30
        while sim.task(task_id)["status"] != "RUNNING":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the floor's task {task_id} never started: {sim.task(task_id)}")
            time.sleep(0.02)
        sent = time.time()
        requests.post(sim.base_url + "/task/openapi/cancel", json={"apiKey": sim.keys[0], "taskId": task_id},
                      timeout=10)
        samples.append(sim.task(task_id)["finished"] - sent)
    return median(samples)


def run(sim: Simulator, host, count: int = 24) -> str:
    floor = bare_cancel(sim)
    rows, latencies, lost = [], [], 0
    for offset in offsets(count):
        sim.reset()
        sim.configure(run_seconds=RUN_SECONDS)
        hook, sent = interrupt_after(host, "13", offset)
        host.run(run_fetch(WORKFLOWS["empty"], save_images=False), timeout=RUN_SECONDS, on_event=hook)
        time.sleep(0.2)  # a cancel sent as the prompt ended reaches the simulator
        for task in sim.tasks():
            if task["cancelled"]:
                latencies.append(task["finished"] - sent[0])
                rows.append((offset, task["taskId"], round(latencies[-1], 3)))
            else:
                lost += 1
                rows.append((offset, task["taskId"], f"LOST ({task['status']})"))
    table(["offset s", "task", "interrupt → cancelled s"], rows)
    return bench_line("cancel_latency", max(latencies), floor, TARGET, median=median(latencies), lost=lost,
                      interrupts=len(offsets(count)), cancelled=len(latencies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24, help="interrupts (at least 20)")
    args = parser.parse_args()
    with bench_simulator(key_count=1) as sim, comfy_with_pack(sim, sim.keys) as host:
        run(sim, host, count=max(20, args.count))


if __name__ == "__main__":
    main()
