"""Every benchmark in one run (`make bench`): chain_overhead, notice_latency, fanout,
fetch_decode and cancel_latency against one simulator on loopback and one real ComfyUI
with the pack (a pool of 4 keys × 2 slots); offload_overhead (`--via pack`: RH Remote Group
in a ComfyUI with the pack) with a simulator of its own in front of a second, plain
ComfyUI. Prints one `BENCH ...` line per benchmark with its table, then a summary.
Nothing passes or fails on time; a benchmark that breaks is reported and the others still
run (exit status 1 then).

Run: `scripts/run-in-venv.sh python bench/run_all.py [--only NAME ...] [--long-seconds 60]`
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import cancel_latency
import chain_overhead
import fanout
import fetch_decode
import notice_latency
import offload_overhead
from common import bench_simulator, comfy_with_pack, machine

NAMES = ["chain_overhead", "notice_latency", "fanout", "fetch_decode", "cancel_latency", "offload_overhead"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=NAMES, default=NAMES)
    parser.add_argument("--long-seconds", type=float, default=60.0, help="run time of notice_latency's long tasks")
    args = parser.parse_args()
    print(f"# benchmarks on {machine()}", flush=True)
    print(f"# started {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    lines, failed = {}, []
    started = time.monotonic()
    with bench_simulator(key_count=4, concurrency=fanout.SLOTS) as sim:
        needs_host = [n for n in args.only if n not in ("fetch_decode", "offload_overhead")]
        host_cm = comfy_with_pack(sim, sim.keys) if needs_host else None
        host = host_cm.__enter__() if host_cm else None
        try:
            for name in args.only:
                print(f"\n## {name}", flush=True)
                sim.reset()
                try:
                    if name == "chain_overhead":
                        lines[name] = chain_overhead.run(sim, host)
                    elif name == "notice_latency":
                        lines[name] = notice_latency.run(sim, host, long_seconds=args.long_seconds)
                    elif name == "fanout":
                        lines[name] = fanout.run(sim, host)
                    elif name == "cancel_latency":
                        lines[name] = cancel_latency.run(sim, host)
                    elif name == "offload_overhead":
                        lines[name] = offload_overhead.run_own(via="pack")  # the measurement
                    else:
                        lines[name] = fetch_decode.run(sim)
                except Exception:  # noqa: BLE001 - report and go on with the others
                    failed.append(name)
                    print(f"{name} did not complete:\n{traceback.format_exc()}", flush=True)
        finally:
            if host_cm is not None:
                host_cm.__exit__(None, None, None)
    print(f"\n## summary ({time.monotonic() - started:.0f} s)")
    for name in args.only:
        fields = dict(part.split("=", 1) for part in lines[name].split()[2:]) if name in lines else {}
        print(f"    {name:<15} ratio {fields.get('ratio', '-'):>7}  target {fields.get('target', '-')}"
              + ("" if name in lines else "  (did not complete)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
