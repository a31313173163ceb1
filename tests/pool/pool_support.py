"""Helpers for the key-pool tests: pools over the simulator's keys, sweeps run in threads
as ComfyUI runs a list-mapped node, and readings of the simulator's task timestamps."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from support.clients import make_client
from support.pack import pack_module
from support.simulator import WORKFLOWS

pool_mod = pack_module("client.pool")
run_mod = pack_module("remote.run")
polling = pack_module("client.polling")
overrides_mod = pack_module("client.overrides")

FAST = polling.PollPolicy(fast_interval=0.05, fast_window=0.5, max_interval=0.2)


def make_pool(sim, key_indices=None, *, concurrency=2, **kw):
    """A private pool (not the process-wide registry) over some of the simulator's keys,
    with short cool-downs and ticks for tests."""
    indices = list(range(len(sim.keys))) if key_indices is None else list(key_indices)
    clients = {sim.keys[i]: make_client(sim, i) for i in indices}
    first = clients[sim.keys[indices[0]]]
    kw.setdefault("cooldown_first", 0.1)
    kw.setdefault("cooldown_max", 0.4)
    kw.setdefault("tick", 0.05)
    return pool_mod.KeyPool(first.site, [clients[sim.keys[i]].key for i in indices],
                            client_factory=lambda key: clients[key.secret], concurrency=concurrency, **kw)


def seed_override(seed: int):
    return overrides_mod.NodeOverride("1", "seed", seed)


@dataclass
class Sweep:
    """`count` runs of the noise workflow (one seed each) through `pool`, one thread each,
    as ComfyUI runs a list-mapped node."""

    pool: object
    seeds: list[int]
    stop: threading.Event = field(default_factory=threading.Event)
    results: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    threads: list = field(default_factory=list)

    def start(self, after_each=None) -> "Sweep":
        """Starts one thread per seed; `after_each(n)` is called after the n-th start."""
        for n, seed in enumerate(self.seeds, 1):
            t = threading.Thread(target=self._run, args=(seed,), daemon=True)
            t.start()
            self.threads.append(t)
            if after_each is not None:
                after_each(n)
        return self

    def _run(self, seed: int) -> None:
        try:
            self.results[seed] = run_mod.run_and_wait(
                self.pool, kind="workflow", workflow_id=WORKFLOWS["noise"], overrides=[seed_override(seed)],
                poll_policy=FAST, capacity_budget=60, should_stop=self.stop.is_set,
                on_warning=self.warnings.append)
        except Exception as exc:  # noqa: BLE001 - collected for the test to look at
            self.errors[seed] = exc

    def join(self, timeout: float = 120) -> "Sweep":
        for t in self.threads:
            t.join(timeout)
            assert not t.is_alive(), "a run of the sweep did not end"
        return self


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.01):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


def peak_overlap(tasks: list[dict]) -> int:
    """Most tasks between created and finished at the same moment (simulator timestamps)."""
    events = []
    for t in tasks:
        events.append((t["created"], 1))
        events.append((t["finished"] if t["finished"] is not None else float("inf"), -1))
    peak = level = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        level += step
        peak = max(peak, level)
    return peak


def seeds_of(tasks: list[dict]) -> list[int]:
    return sorted(o["fieldValue"] for t in tasks for o in t["overrides"] if o["fieldName"] == "seed")
