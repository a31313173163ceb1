"""The key pool against the simulator: spreading, waiting, 421/415 storms, keys failing
mid-sweep, interrupts, re-attach, and never a task created twice."""

from __future__ import annotations

import threading

import pytest

from support.clients import make_client
from support.pack import pack_module
from support.simulator import WORKFLOWS

from pool_support import FAST, Sweep, make_pool, peak_overlap, pool_mod, run_mod, seed_override, seeds_of, wait_until

errors = pack_module("client.errors")
polling = pack_module("client.polling")


def by_key(tasks: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for t in tasks:
        out.setdefault(t["key"], []).append(t)
    return out


def test_a_sweep_spreads_over_every_key_and_never_overbooks_one(sim, no_key_in_logs):
    pool = make_pool(sim, concurrency=2)
    seeds = list(range(100, 116))
    sweep = Sweep(pool, seeds).start().join()
    assert not sweep.errors, sweep.errors
    tasks = sim.tasks()
    assert seeds_of(tasks) == seeds  # each seed once: nothing created twice, nothing missing
    assert sim.count("create") == len(seeds)  # no refused create either: the pool never over-booked
    keys = by_key(tasks)
    assert set(keys) == {sim.redacted(k) for k in sim.keys}
    assert all(peak_overlap(ts) <= 2 for ts in keys.values())
    assert peak_overlap(tasks) > 2  # more at once than one key allows
    for seed, task in sweep.results.items():  # a task keeps the key that created it
        [remote] = [t for t in tasks if t["taskId"] == task.task_id]
        assert remote["key"] == task.client.key.hint
        assert remote["overrides"][0]["fieldValue"] == seed
    assert all(s.in_flight == 0 for s in pool.states())


def test_submitters_that_wait_are_served_in_arrival_order(sim):
    sim.configure(run_seconds=0.2)
    pool = make_pool(sim, [0], concurrency=1)
    seeds = list(range(200, 206))
    # Thread n+1 starts only once thread n has its task or waits in line for the slot.
    sweep = Sweep(pool, seeds).start(after_each=lambda n: wait_until(lambda: pool.waiting + len(sim.tasks()) >= n))
    sweep.join()
    assert not sweep.errors, sweep.errors
    tasks = sorted(sim.tasks(), key=lambda t: t["created"])
    assert [t["overrides"][0]["fieldValue"] for t in tasks] == seeds
    assert peak_overlap(tasks) == 1


def test_a_421_storm_teaches_the_pool_each_keys_limit(sim, no_key_in_logs):
    sim.configure(concurrency=1, queue_depth=0, run_seconds=0.3)  # a second task on a key: 421
    pool = make_pool(sim, concurrency=3)
    seeds = list(range(300, 312))
    sweep = Sweep(pool, seeds).start().join()
    assert not sweep.errors, sweep.errors
    tasks = sim.tasks()
    assert seeds_of(tasks) == seeds
    refused = sim.count("create") - len(seeds)
    assert refused > 0  # the storm happened
    assert all(peak_overlap(ts) == 1 for ts in by_key(tasks).values())
    learned = [s.capacity for s in pool.states()]
    assert 1 in learned and max(learned) <= 3
    assert sim.count("accountStatus") >= 1  # the account was asked before learning
    assert refused <= 3 * len(sim.keys) * 2, "the pool kept hammering full keys"


def test_injected_421_and_415_replies_are_retried_and_create_nothing(sim):
    pool = make_pool(sim, concurrency=2)
    sim.fault("create", "api_error", count=5, code=421)  # faults fire in the order they were armed
    sim.fault("create", "api_error", count=3, code=415)
    seeds = list(range(400, 408))
    sweep = Sweep(pool, seeds).start().join()
    assert not sweep.errors, sweep.errors
    assert seeds_of(sim.tasks()) == seeds
    assert sim.count("create") == len(seeds) + 8


def test_a_key_out_of_coins_mid_sweep_is_taken_out_with_a_warning(sim, no_key_in_logs):
    sim.configure(run_seconds=0.3)
    pool = make_pool(sim, concurrency=1)
    seeds = list(range(500, 516))
    sweep = Sweep(pool, seeds).start()
    poor = sim.keys[1]
    wait_until(lambda: sim.count("create", key=poor) >= 1)
    sim.configure(keys={poor: {"coins": 0}})
    sweep.join()
    assert not sweep.errors, sweep.errors
    tasks = sim.tasks()
    assert seeds_of(tasks) == seeds  # every run done, on the other keys, none twice
    hint = sim.redacted(poor)
    assert len(sweep.warnings) == 1
    assert hint in sweep.warnings[0] and "out of coins (416)" in sweep.warnings[0] and "3 of 4 keys left" in \
        sweep.warnings[0]
    assert poor not in sweep.warnings[0]
    assert [s.state for s in pool.states()][1] == "removed"
    assert pool.warnings() == [f"RunningHub key {hint} taken out of the pool: out of coins (416)."]
    created_on_poor = len(by_key(tasks).get(hint, []))
    assert sim.count("create", key=poor) - created_on_poor == 1  # refused once, then never asked again
    assert "taken out of the pool" in no_key_in_logs.text


def test_a_disabled_key_is_taken_out_even_before_any_create(sim):
    sim.configure(keys={sim.keys[0]: {"disabled": True}})
    pool = make_pool(sim, concurrency=2)
    sweep = Sweep(pool, [600, 601, 602]).start().join()
    assert not sweep.errors, sweep.errors
    assert seeds_of(sim.tasks()) == [600, 601, 602]
    assert sim.redacted(sim.keys[0]) not in by_key(sim.tasks())
    # Found out by the workflow check (creates nothing) or by one refused create (802: nothing created).
    assert sim.count("create", key=sim.keys[0]) <= 1
    assert len(sweep.warnings) == 1 and "key refused (802)" in sweep.warnings[0]


def test_no_key_left_fails_naming_every_key_and_why(sim):
    k = sim.keys
    sim.configure(keys={k[0]: {"disabled": True}, k[1]: {"disabled": True}, k[2]: {"coins": 0}, k[3]: {"coins": 0}})
    pool = make_pool(sim)
    sweep = Sweep(pool, [700, 701, 702]).start().join()
    assert set(sweep.errors) == {700, 701, 702}
    assert sim.tasks() == []
    for exc in sweep.errors.values():
        text = str(exc)
        assert isinstance(exc, errors.RunningHubError)
        for i, reason in ((0, "key refused (802)"), (1, "key refused (802)"), (2, "out of coins (416)"),
                          (3, "out of coins (416)")):
            assert f"{sim.redacted(k[i])}: {reason}" in text
            assert k[i] not in text
        assert "Nothing was created" in text


def test_a_pool_of_one_key_keeps_the_keys_own_error_and_the_key(sim):
    sim.configure(keys={sim.keys[0]: {"coins": 0}})
    pool = make_pool(sim, [0])
    sweep = Sweep(pool, [800]).start().join()
    [exc] = sweep.errors.values()
    assert type(exc) is errors.InsufficientFundsError and "top up" in str(exc)
    assert [s.state for s in pool.states()] == ["ready"]  # topping up is enough to go on
    sim.configure(keys={sim.keys[0]: {"coins": 1000}})
    sweep = Sweep(pool, [801]).start().join()
    assert not sweep.errors and seeds_of(sim.tasks()) == [801]


def test_interrupt_cancels_every_running_task_and_creates_no_more(sim):
    sim.configure(run_seconds=30)
    pool = make_pool(sim, [0, 1], concurrency=2)
    seeds = list(range(900, 910))
    sweep = Sweep(pool, seeds).start()
    wait_until(lambda: len(sim.tasks()) == 4 and pool.waiting == 6)
    sweep.stop.set()
    sweep.join()
    assert set(sweep.errors) == set(seeds)
    assert all(isinstance(e, errors.WaitInterrupted) for e in sweep.errors.values())
    waited = [e for e in sweep.errors.values() if "nothing was created" in str(e)]
    assert len(waited) == 6
    tasks = sim.tasks()
    assert len(tasks) == 4 and sim.count("create") == 4
    assert all(t["cancelled"] and t["status"] == "FAILED" for t in tasks)
    assert sim.count("cancel") == 4
    assert all(s.in_flight == 0 for s in pool.states())


def test_tasks_of_someone_else_make_a_key_cool_down_not_shrink(sim):
    sim.configure(concurrency=2, queue_depth=0, run_seconds=1.0)
    outsider = make_client(sim, 0)
    outsider.create_task(WORKFLOWS["empty"])  # the website or another machine uses the key
    pool = make_pool(sim, [0], concurrency=2)
    sweep = Sweep(pool, [1000, 1001]).start().join()
    assert not sweep.errors, sweep.errors
    assert sim.count("create") > 3  # the second run was refused at least once
    assert sim.count("accountStatus") >= 1
    assert [s.capacity for s in pool.states()] == [2]  # 421 came from the outsider's task: limit kept
    assert seeds_of(sim.tasks()) == [1000, 1001]


def test_waiting_behind_the_pools_own_tasks_never_runs_out_of_budget(sim):
    sim.configure(run_seconds=0.6)
    pool = make_pool(sim, [0], concurrency=1)
    runs = []
    for seed in (1300, 1301, 1302):  # each waits for the one before: longer than the budget
        runs.append(threading.Thread(target=lambda s=seed: run_mod.run_and_wait(
            pool, kind="workflow", workflow_id=WORKFLOWS["noise"], overrides=[seed_override(s)], poll_policy=FAST,
            capacity_budget=0.2)))
    for t in runs:
        t.start()
    for t in runs:
        t.join(60)
    assert seeds_of(sim.tasks()) == [1300, 1301, 1302]
    assert peak_overlap(sim.tasks()) == 1


def test_refusals_for_the_budget_fail_with_nothing_created(sim):
    sim.configure(concurrency=1, queue_depth=0, run_seconds=30)
    make_client(sim, 0).create_task(WORKFLOWS["empty"])
    pool = make_pool(sim, [0], concurrency=1)
    with pytest.raises(errors.CapacityError, match="nothing was created"):
        run_mod.run_and_wait(pool, kind="workflow", workflow_id=WORKFLOWS["noise"], overrides=[seed_override(1)],
                             poll_policy=FAST, capacity_budget=0.5)
    assert len(sim.tasks()) == 1


def test_reattach_finds_the_key_that_created_a_task(sim):
    pool = make_pool(sim)
    foreign = make_client(sim, 2).create_task(WORKFLOWS["empty"])
    client = pool.client_for_task(foreign.task_id)
    assert client.key.secret == sim.keys[2]
    polling.wait_for_task(client, foreign.task_id, policy=FAST)
    [task] = Sweep(pool, [1100]).start().join().results.values()
    statuses = sim.count("status")
    assert pool.client_for_task(task.task_id) is task.client  # remembered: nobody asked
    assert sim.count("status") == statuses


def test_reattach_after_a_restart_takes_the_key_the_ledger_names(sim):
    """The task ledger keeps the key's last 4: a new process (a new pool) picks that key
    without asking RunningHub key by key."""
    foreign = make_client(sim, 2).create_task(WORKFLOWS["empty"])
    pool = make_pool(sim)
    statuses = sim.count("status")
    client = pool.client_for_task(foreign.task_id, key_hint="…" + sim.keys[2][-4:])
    assert client.key.secret == sim.keys[2] and sim.count("status") == statuses
    assert pool.client_for_task(foreign.task_id) is client  # and remembers it
    polling.wait_for_task(client, foreign.task_id, policy=FAST)


def test_one_pool_per_site_and_key_set():
    credentials = pack_module("client.credentials")
    sites = pack_module("client.sites")
    api = pack_module("client.api")
    site = sites.resolve_site(base_url="http://127.0.0.1:9")
    a, b = credentials.ApiKey("a" * 32), credentials.ApiKey("b" * 32)

    def factory(key):
        return api.RunningHubClient(site, key)

    first = pool_mod.shared_pool(site, [a, b], client_factory=factory, concurrency=2)
    assert pool_mod.shared_pool(site, [b, a], client_factory=factory, concurrency=2) is first
    assert pool_mod.shared_pool(site, [a], client_factory=factory, concurrency=2) is not first
    assert pool_mod.shared_pool(site, [a, b], client_factory=factory, concurrency=3) is not first
    assert "a" * 32 not in repr(first) and "…aaaa" in repr(first)


@pytest.mark.parametrize("text, slots", [("3", 3), (" 12 ", 12), ("", 2), (None, 2), ("two", 2), ("0", 1),
                                         ("-4", 1)])
def test_key_concurrency_setting(text, slots):
    assert pool_mod.key_concurrency_from(text) == slots
    assert pool_mod.DEFAULT_KEY_CONCURRENCY == 2


def test_waiting_blocks_on_the_condition_not_on_http(sim):
    """A full pool asks RunningHub nothing while it waits: only creates that can succeed are sent."""
    sim.configure(run_seconds=1.0)
    pool = make_pool(sim, [0], concurrency=1)
    sweep = Sweep(pool, [1200, 1201, 1202]).start()
    wait_until(lambda: pool.waiting == 2)
    sweep.join()
    assert not sweep.errors, sweep.errors
    assert sim.count("create") == 3 and sim.count("accountStatus") == 0


def test_overrides_refused_after_the_workflow_changed_on_the_website_are_named(tmp_path):
    """The pack checks overrides against the workflow's API format, cached a few minutes. When
    the workflow changed on the website in between, RunningHub refuses the create (803, whose
    msg names nothing): the error reads the workflow again and names the entry to fix."""
    from support.simulator import DEFAULT_WORKFLOWS, Simulator

    workflow_id = "1990000000000000001"
    path = tmp_path / f"{workflow_id}.json"
    path.write_text((DEFAULT_WORKFLOWS / f"{WORKFLOWS['noise']}.json").read_text())
    with Simulator(workflows_dir=tmp_path, run_seconds=0.1) as sim:
        pool = make_pool(sim, [0])
        first = run_mod.run_and_wait(pool, kind="workflow", workflow_id=workflow_id, overrides=[seed_override(3)],
                                     poll_policy=FAST)
        assert first.result.outputs
        path.write_text(path.read_text().replace('"seed"', '"noise_seed"'))  # edited on the website
        with pytest.raises(errors.InvalidNodeInfoError) as refused:
            run_mod.run_and_wait(pool, kind="workflow", workflow_id=workflow_id, overrides=[seed_override(4)],
                                 poll_policy=FAST)
        assert "node 1 (SimNoiseImage) has no field 'seed'; its fields: " in str(refused.value), refused.value
        assert "noise_seed" in str(refused.value) and sim.count("create") == 2 and len(sim.tasks()) == 1
