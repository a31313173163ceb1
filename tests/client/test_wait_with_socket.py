"""wait_for_task following the task's websocket, against the simulator over loopback:
remote progress reported, outputs polled at once when the socket says the prompt ended,
heartbeat polling while it is healthy, the adaptive schedule when it drops or is silent."""

from __future__ import annotations

import time

import pytest

from support.pack import pack_module
from support.simulator import WORKFLOWS

errors = pack_module("client.errors")
polling = pack_module("client.polling")
records = pack_module("client.records")
run = pack_module("remote.run")
task_socket = pack_module("client.task_socket")

POLICY = polling.PollPolicy(max_interval=2.0)


def wait(client, sim, seconds: float, policy=POLICY, should_stop=None, **settings):
    """Create a task running `seconds` and wait for it following its socket; (result,
    progress reports, the simulator's record of the task)."""
    sim.configure(run_seconds=seconds, progress_steps=10, **settings)
    handle = client.create_task(WORKFLOWS["invert"], [])
    reports = []
    result = polling.wait_for_task(
        client, handle.task_id, initial_state=handle.state, policy=policy, on_progress=reports.append,
        net_wss_url=handle.net_wss_url, should_stop=should_stop,
        open_socket=run.socket_opener(client, "workflow", WORKFLOWS["invert"], handle.task_id))
    return result, reports, sim.task(handle.task_id)


def test_the_socket_shows_progress_and_ends_the_wait_at_once(client, sim):
    result, reports, task = wait(client, sim, 4.0)
    assert result.outputs and task["status"] == "SUCCESS"
    remote = [r.remote for r in reports if r.remote is not None and r.remote.value is not None]
    values = [r.value for r in remote]
    assert len(set(values)) >= 3 and values == sorted(values)
    assert remote[-1].node_class == "ImageInvert" and remote[-1].max == 10 and remote[-1].nodes_total == 3
    # heartbeat only while the socket was healthy: the end came from the socket, not a poll
    assert sim.count("outputs") <= 3
    assert sim.count("ws") == 1


def test_polls_at_the_heartbeat_while_the_socket_is_healthy(client, sim):
    _, _, _ = wait(client, sim, 12.0)
    assert sim.count("outputs") <= 3  # the adaptive schedule would poll about 8 times


@pytest.mark.parametrize("mode", ["drop", "silent", "off"])
def test_without_a_working_socket_polling_ends_the_wait(client, sim, mode):
    result, reports, task = wait(client, sim, 3.0, websocket=mode, websocket_drop_after=4)
    assert result.outputs and task["status"] == "SUCCESS"
    assert sim.count("outputs") >= 4  # the adaptive schedule, not the heartbeat
    assert reports[-1].state is records.TaskState.SUCCESS


def test_a_stop_cancels_within_a_tick_while_following_the_socket(client, sim):
    at = {"t": None}

    def should_stop():
        if at["t"] is None and time.monotonic() > started + 1.5:
            at["t"] = time.monotonic()
        return at["t"] is not None

    started = time.monotonic()
    with pytest.raises(errors.WaitInterrupted):
        wait(client, sim, 20.0, should_stop=should_stop)
    assert time.monotonic() - at["t"] < 1.0  # a tick, then one cancel call
    assert [t["cancelled"] for t in sim.tasks()] == [True]


def test_an_address_of_another_host_is_not_followed(client, sim):
    sim.configure(run_seconds=1.0)
    handle = client.create_task(WORKFLOWS["invert"], [])
    opened = []

    def open_socket(url):
        opened.append(url)
        return task_socket.TaskSocket.open(url.replace("127.0.0.1", "localhost"), client.site)

    result = polling.wait_for_task(client, handle.task_id, initial_state=handle.state, policy=POLICY,
                                   net_wss_url=handle.net_wss_url, open_socket=open_socket)
    assert result.outputs and len(opened) == 1 and sim.count("ws") == 0


def test_re_attaching_to_a_running_task_follows_its_socket_too(client, sim, tmp_path):
    fetch = pack_module("remote.fetch")
    sim.configure(run_seconds=3.0, progress_steps=10)
    handle = client.create_task(WORKFLOWS["empty"], [])
    reports = []
    counter = iter(range(1000))
    fetched = fetch.fetch_outputs(client, handle.task_id, None, on_progress=reports.append,
                                  new_temp_file=lambda suffix: str(tmp_path / f"{next(counter)}{suffix}"))
    assert fetched.images is not None and sim.count("ws") == 1
    assert any(r.remote is not None and r.remote.value for r in reports)
