"""The poll schedule with an expected running time (client/polling.py, changed for the
notice_latency and chain_overhead benchmarks). Schedules are computed, not timed."""

from __future__ import annotations

import pytest

from support.clients import make_client
from support.pack import pack_module
from support.simulator import WORKFLOWS

polling = pack_module("client.polling")


def polls_until(policy, finish: float, expected: float | None) -> tuple[int, float]:
    """Polls a task that ends at `finish` gets, and how late the last one comes."""
    t, interval, polls = 0.0, None, 0
    while True:
        interval = policy.next_interval(t, interval, expected)
        t += interval
        polls += 1
        if t >= finish:
            return polls, t - finish


@pytest.mark.parametrize("seconds", [0.4, 1.0, 2.0, 7.0, 60.0, 300.0])
def test_an_expected_end_is_noticed_within_the_near_interval(seconds):
    policy = polling.PollPolicy()
    polls, late = polls_until(policy, seconds + 0.02, expected=seconds)
    assert late <= policy.near_interval + 1e-9
    generic, generic_late = polls_until(policy, seconds + 0.02, expected=None)
    assert late <= generic_late
    assert polls <= generic + 4  # dense only near the end
    if seconds >= 60:
        assert polls <= seconds / 3.5  # at most one poll per 3.5 s over a long task


def test_without_an_expectation_the_schedule_is_unchanged():
    policy = polling.PollPolicy()
    t, interval, times = 0.0, None, []
    while t < 10:
        interval = policy.next_interval(t, interval)
        t += interval
        times.append(round(t, 2))
    assert times == [0.25, 0.5, 0.75, 1.0, 1.25, 1.75, 2.75, 4.75, 8.75, 13.75]


@pytest.mark.parametrize("expected, actual", [(1.0, 60.0), (60.0, 20.0), (60.0, 75.0), (30.0, 29.0)])
def test_a_wrong_expectation_costs_little(expected, actual):
    policy = polling.PollPolicy()
    polls, late = polls_until(policy, actual, expected)
    generic, generic_late = polls_until(policy, actual, None)
    assert polls <= generic + 4
    assert late <= policy.max_interval


def test_run_times_average_towards_the_latest():
    times = polling.RunTimes(weight=0.5, capacity=2)
    assert times.expected("a") is None
    times.record("a", 10.0)
    times.record("a", 20.0)
    assert times.expected("a") == 15.0
    times.record("b", 1.0)
    times.record("c", 1.0)  # capacity 2: the oldest kind goes
    assert times.expected("a") is None and times.expected(None) is None


def test_a_finished_task_teaches_its_running_time(simulator):
    simulator.configure(run_seconds=1.0)
    client = make_client(simulator)
    learned = polling.RunTimes()
    key = (client.site.base_url, "workflow", WORKFLOWS["empty"])
    fast = polling.PollPolicy(fast_interval=0.05, fast_window=2.0, max_interval=0.2, near_interval=0.05)
    for _ in range(2):
        handle = client.create_task(WORKFLOWS["empty"])
        polling.wait_for_task(client, handle.task_id, initial_state=handle.state, policy=fast, run_time_key=key,
                              run_times=learned)
    task_seconds = [t["runSeconds"] for t in simulator.tasks()]
    expected = learned.expected(key)
    # The estimate lies in the gap between the last poll that saw it running and the one that
    # saw it done (polls at most max_interval apart), early in that gap.
    assert min(task_seconds) - fast.max_interval <= expected <= max(task_seconds) + fast.max_interval
