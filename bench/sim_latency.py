"""The simulator's request latency on a kept-alive connection against a fresh connection.

With Nagle's algorithm on, a small reply on a kept-alive connection waited for the client's
delayed ACK (~40 ms each: 44 ms measured, against 1.5 ms on a fresh connection), which
inflated every benchmark floor that polls. The simulator sets TCP_NODELAY; this prints

    BENCH sim_latency value=<kept-alive median s> floor=<fresh-connection median s> ratio=... target=ratio<=1.5

Run: `scripts/run-in-venv.sh python bench/sim_latency.py [--requests N]`
"""

from __future__ import annotations

import argparse
import time

import requests
from common import bench_line, bench_simulator, median, table


def timed(call, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def run(sim, count: int = 60) -> str:
    url, body = sim.base_url + "/uc/openapi/accountStatus", {"apikey": sim.keys[0]}
    with requests.Session() as session:
        session.post(url, json=body, timeout=10).raise_for_status()  # opens the connection
        kept = timed(lambda: session.post(url, json=body, timeout=10).json(), count)
    fresh = timed(lambda: requests.post(url, json=body, timeout=10).json(), count)
    line = bench_line("sim_latency", median(kept), median(fresh), "ratio<=1.5", requests=count)
    table(["connection", "median ms", "max ms"],
          [["kept alive", median(kept) * 1000, max(kept) * 1000],
           ["fresh (floor)", median(fresh) * 1000, max(fresh) * 1000]])
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with bench_simulator() as sim:
        run(sim, args.requests)


if __name__ == "__main__":
    main()
