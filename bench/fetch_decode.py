"""fetch_decode: 16 outputs of 1024×1024 PNG downloaded and decoded by the pack's fetch
path (remote/fetch.py, what RH Fetch Outputs runs) against a bare script's parallel
download + decode into one float32 tensor; and the pack's peak memory against the size
of the tensor it returns.

The outputs are the simulator's seeded noise (16 images in one task, PNG level 4, about
3 MB each: noise does not compress, the worst case for both sides).

- Time: one child process runs the pack and four bare layouts in turn, `--repeat` rounds
  (after a warm-up of each), so all see the same conditions; medians. The floor is the
  fastest bare layout: workers that download a file and decode it into its slot (as many
  as cores, 4 or 8), or every download first (8 at once) and then decoding on as many
  threads as cores.
- Memory: a fresh child process per side fetches once; its peak resident memory
  (`ru_maxrss`) minus its resident memory just before (after a small warm-up fetch, so
  torch and the threads are loaded) is what the fetch took. `mem` is that against the
  IMAGE tensor; `mem_vs_outputs` against IMAGE + MASK, both of which the node returns (the
  MASK of opaque images is calloc'ed zeros that are never written: no resident memory).

Run: `scripts/run-in-venv.sh python bench/fetch_decode.py [--repeat 7]`
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from common import WORKFLOWS, Simulator, bench_line, median, table

TARGET = "ratio<=1.2,mem<=1.5"
COUNT = 16
SIZE = 1024
PACK = "pack (remote/fetch.py)"


def rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- the sides: name -> fetch(task_id, size) returning (IMAGE bytes, MASK bytes) ------------

def pack_side(base_url: str, key: str):
    from support.clients import make_client
    from support.pack import pack_module

    fetch = pack_module("remote.fetch")
    client = make_client(SimpleNamespace(base_url=base_url, keys=[key]))
    tmp = tempfile.mkdtemp(prefix="rh-bench-")
    results = {}

    def new_temp_file(suffix: str) -> str:
        return tempfile.mktemp(suffix=suffix, dir=tmp)

    def run(task_id: str, _size: int) -> tuple[int, int]:
        if task_id not in results:
            results[task_id] = client.outputs(task_id).result
        out = fetch.fetch_outputs(client, task_id, results[task_id], new_temp_file=new_temp_file, size_policy="pad")
        return out.images.image.nbytes, out.images.mask.nbytes

    return {PACK: run}


def bare_sides(base_url: str, key: str):
    import numpy as np
    import requests
    import torch
    from PIL import Image

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
    cores = max(2, os.cpu_count() or 2)
    links: dict[str, list[str]] = {}

    def urls(task_id: str) -> list[str]:
        if task_id not in links:
            reply = session.post(base_url + "/task/openapi/outputs", json={"apiKey": key, "taskId": task_id},
                                 timeout=30)
            links[task_id] = [item["fileUrl"] for item in reply.json()["data"]]
        return links[task_id]

    def get(url: str) -> bytes:
        with session.get(url, stream=True, timeout=60) as resp:  # 1 MiB reads (.content reads 10 KiB ones)
            return b"".join(resp.iter_content(1 << 20))

    def decode_into(data: bytes, slot) -> None:
        img = Image.open(io.BytesIO(data))
        img.load()
        np.divide(np.asarray(img), np.float32(255.0), out=slot.numpy(), dtype=np.float32)

    def pipelined(workers: int):
        def run(task_id: str, size: int) -> tuple[int, int]:
            found = urls(task_id)
            out = torch.empty((len(found), size, size, 3), dtype=torch.float32)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(lambda i: decode_into(get(found[i]), out[i]), range(len(found))))
            return out.nbytes, 0
        return run

    def phased(task_id: str, size: int) -> tuple[int, int]:
        found = urls(task_id)
        out = torch.empty((len(found), size, size, 3), dtype=torch.float32)
        with ThreadPoolExecutor(max_workers=8) as pool:
            blobs = list(pool.map(get, found))
        with ThreadPoolExecutor(max_workers=cores) as pool:
            list(pool.map(lambda i: decode_into(blobs[i], out[i]), range(len(found))))
        return out.nbytes, 0

    return {f"bare: download+decode x{cores}": pipelined(cores), "bare: download+decode x4": pipelined(4),
            "bare: download+decode x8": pipelined(8), "bare: all downloads, then decode": phased}


# -- child processes ---------------------------------------------------------------------------

def child_times(base_url: str, key: str, task_id: str, warm_id: str, repeat: int) -> dict:
    sides = {**pack_side(base_url, key), **bare_sides(base_url, key)}
    for run in sides.values():
        run(warm_id, 64)
        run(task_id, SIZE)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeat):
        for name, run in sides.items():
            gc.collect()
            t0 = time.perf_counter()
            run(task_id, SIZE)
            times[name].append(time.perf_counter() - t0)
    return times


def child_memory(side: str, base_url: str, key: str, task_id: str, warm_id: str) -> dict:
    sides = pack_side(base_url, key) if side == "pack" else bare_sides(base_url, key)
    run = next(iter(sides.values())) if side == "pack" else sides["bare: all downloads, then decode"]
    run(warm_id, 64)
    gc.collect()
    base = rss_now()
    image, mask = run(task_id, SIZE)
    return {"peak": peak_rss() - base, "image": image, "mask": mask}


def in_child(args: list[str], sim: Simulator) -> dict:
    cmd = [sys.executable, __file__, "--base-url", sim.base_url, *args]
    env = dict(os.environ, RH_BENCH_KEY=sim.keys[0])  # never on a command line
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the parent ------------------------------------------------------------------------------

def make_task(sim: Simulator, width: int, height: int, batch: int) -> str:
    import requests

    created = requests.post(sim.base_url + "/task/openapi/create", timeout=60, json={
        "apiKey": sim.keys[0], "workflowId": WORKFLOWS["noise"], "nodeInfoList": [
            {"nodeId": "1", "fieldName": "seed", "fieldValue": 7},
            {"nodeId": "1", "fieldName": "width", "fieldValue": width},
            {"nodeId": "1", "fieldName": "height", "fieldValue": height},
            {"nodeId": "1", "fieldName": "batch_size", "fieldValue": batch}]}).json()
    task_id = created["data"]["taskId"]
    sim.wait_for(lambda: sim.task(task_id)["status"] == "SUCCESS", timeout=300, interval=0.2)
    return task_id


def run(sim: Simulator, repeat: int = 7) -> str:
    sim.configure(run_seconds=0, queue_seconds=0, url_ttl_seconds=3600)
    task_id = make_task(sim, SIZE, SIZE, COUNT)
    warm_id = make_task(sim, 64, 64, 2)
    ids = ["--task", task_id, "--warm", warm_id]
    times = in_child(["--child", "times", "--repeat", str(repeat), *ids], sim)
    pack_mem = in_child(["--child", "memory-pack", *ids], sim)
    bare_mem = in_child(["--child", "memory-bare", *ids], sim)
    medians = {name: median(t) for name, t in times.items()}
    best = min((n for n in medians if n != PACK), key=medians.get)
    value, floor = medians[PACK], medians[best]
    mem = pack_mem["peak"] / pack_mem["image"]
    line = bench_line("fetch_decode", value, floor, TARGET, mem=round(mem, 3),
                      mem_vs_outputs=round(pack_mem["peak"] / (pack_mem["image"] + pack_mem["mask"]), 3),
                      outputs=COUNT, floor_layout=best.split(": ", 1)[1].replace(" ", "_"))
    mb = 1024 ** 2
    rows = [[PACK, value, pack_mem["peak"] / mb, pack_mem["image"] / mb, pack_mem["mask"] / mb, mem]]
    rows += [[name + (" (floor)" if name == best else ""), t, "", "", "", ""]
             for name, t in medians.items() if name != PACK]
    rows += [["bare: all downloads, then decode (memory)", "", bare_mem["peak"] / mb, bare_mem["image"] / mb, 0,
              bare_mem["peak"] / bare_mem["image"]]]
    table(["side", "median s", "peak MiB", "IMAGE MiB", "MASK MiB", "peak / IMAGE"], rows)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", choices=["times", "memory-pack", "memory-bare"])
    parser.add_argument("--base-url")
    parser.add_argument("--task")
    parser.add_argument("--warm")
    args = parser.parse_args()
    if args.child:
        key = os.environ["RH_BENCH_KEY"]
        if args.child == "times":
            out = child_times(args.base_url, key, args.task, args.warm, args.repeat)
        else:
            out = child_memory(args.child.split("-")[1], args.base_url, key, args.task, args.warm)
        print(json.dumps(out))
        return
    with Simulator(key_count=1, concurrency=2) as sim:
        run(sim, args.repeat)


if __name__ == "__main__":
    main()
