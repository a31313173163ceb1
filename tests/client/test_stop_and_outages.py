"""Stops and outages below polling: the transport's backoff stops when the run stops, and a
wait rides out network errors, 5xx and 429 on outputs instead of abandoning a billed task.
Against the simulator over real HTTP, with its fault hooks."""

from __future__ import annotations

import time

import pytest

from support.pack import pack_module
from support.simulator import WORKFLOWS

errors = pack_module("client.errors")
polling = pack_module("client.polling")
records = pack_module("client.records")
retry = pack_module("client.retry")
stop = pack_module("client.stop")

QUICK_OUTAGE = retry.RetryPolicy(base_delay=0.05, max_delay=0.3)
FAST = polling.PollPolicy(fast_interval=0.05, fast_window=0.5, max_interval=0.3, outage=QUICK_OUTAGE)


def stop_after(seconds: float):
    at = time.monotonic() + seconds
    return lambda: time.monotonic() > at


def test_a_stop_cuts_short_the_transports_retry_after_wait(client, sim):
    handle = client.create_task(WORKFLOWS["empty"])
    sim.fault("outputs", "http_error", count=1, status=503, retry_after=10)
    started = time.monotonic()
    with stop.stop_when(stop_after(0.3)), pytest.raises(errors.WaitInterrupted):
        client.outputs(handle.task_id)
    assert time.monotonic() - started < 0.3 + 2.0  # generous on a loaded machine; it slept 10 s before


def test_a_stop_cuts_short_a_reply_that_is_slow_to_come(client, sim):
    handle = client.create_task(WORKFLOWS["empty"])
    sim.fault("outputs", "delay", seconds=20)
    started = time.monotonic()
    with stop.stop_when(stop_after(0.3)), pytest.raises(errors.WaitInterrupted):
        client.outputs(handle.task_id)
    assert time.monotonic() - started < 0.3 + 2.0  # it waited for the reply (20 s) before


@pytest.mark.parametrize("fault", [dict(kind="http_error", status=503), dict(kind="http_error", status=429),
                                   dict(kind="reset_before"), dict(kind="html_502")])
def test_an_outage_on_outputs_mid_run_is_ridden_out_with_one_create(client, sim, fault):
    sim.configure(run_seconds=1.5)
    handle = client.create_task(WORKFLOWS["empty"])
    sim.fault("outputs", count=14, **fault)  # more than the transport's 4 attempts, several times over
    sim.fault("status", count=14, **fault)
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    assert len(result.outputs) == 2
    assert sim.count("create") == 1 and sim.count("cancel") == 0


def test_a_failed_poll_shows_as_trouble_and_clears(client, sim):
    sim.configure(run_seconds=1.0)
    handle = client.create_task(WORKFLOWS["empty"])
    sim.fault("outputs", "http_error", count=8, status=503)
    seen = []
    polling.wait_for_task(client, handle.task_id, policy=FAST, on_progress=seen.append)
    troubles = [p.trouble for p in seen if p.trouble]
    assert troubles and "trying again" in troubles[0]
    assert seen[-1].trouble is None and seen[-1].state is records.TaskState.SUCCESS


def test_a_stop_during_an_outage_cancels_the_task_once(client, sim):
    sim.configure(run_seconds=30)
    handle = client.create_task(WORKFLOWS["empty"])
    sim.fault("outputs", "http_error", count=1000, status=503, retry_after=5)
    started = time.monotonic()
    with pytest.raises(errors.WaitInterrupted, match="cancelled"):
        polling.wait_for_task(client, handle.task_id, policy=FAST, should_stop=stop_after(0.5))
    assert time.monotonic() - started < 0.5 + 2.0
    assert sim.count("cancel") == 1
    [task] = sim.tasks()
    assert task["cancelled"] is True


def test_the_wait_limit_still_ends_an_endless_outage(client, sim):
    sim.configure(run_seconds=30)
    handle = client.create_task(WORKFLOWS["empty"])
    sim.fault("outputs", "http_error", count=1000, status=503)
    with pytest.raises(errors.TaskTimeoutError, match="cannot reach RunningHub") as info:
        polling.wait_for_task(client, handle.task_id, policy=polling.with_budgets(FAST, queued=1.0, running=1.0))
    assert "RH Fetch Outputs" in str(info.value)
    assert sim.count("cancel") == 0  # left as it is: re-attach later
