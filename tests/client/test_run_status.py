"""The typed status event (remote/status.py): its line, its JSON and the bar's fraction."""

from __future__ import annotations

from support.pack import pack_module

polling = pack_module("client.polling")
records = pack_module("client.records")
remote_progress = pack_module("client.remote_progress")
status = pack_module("remote.status")


def progress(state="RUNNING", remote=None, trouble=None):
    return polling.TaskProgress("123", records.TaskState(state), 5.04, 4.0, 3, trouble, remote)


def test_a_running_task_with_a_socket_names_the_remote_node_and_its_steps():
    remote = remote_progress.RemoteProgress(node_id="3", node_class="KSampler", value=12, max=20, nodes_done=2,
                                            nodes_total=5, messages=9)
    s = status.RunStatus.of_progress(progress(remote=remote))
    assert s.line == "RunningHub task 123: running, 4 s (5 s in all) - KSampler (#3) 12/20, nodes 2/5"
    assert s.fraction() == 0.6
    event = s.to_event(index=1, runs=2, warnings=("w",))
    assert event["task_id"] == "123" and event["state"] == "RUNNING" and event["elapsed"] == 5.0
    assert event["remote"] == {"node_id": "3", "node_class": "KSampler", "value": 12, "max": 20, "nodes_done": 2,
                               "nodes_total": 5}
    assert (event["index"], event["runs"], event["warnings"]) == (1, 2, ["w"])
    assert "queue_position" not in event


def test_without_a_socket_the_line_and_bar_are_the_plain_ones():
    s = status.RunStatus.of_progress(progress("QUEUED", trouble="x"))
    assert s.line == "RunningHub task 123: queued, 4 s (5 s in all) - RunningHub not answering, still waiting"
    assert s.fraction() == 0.0 and s.to_event()["remote"] is None
    assert status.RunStatus("SUCCESS", "done").fraction() == 1.0
    assert status.RunStatus("FETCHED", "done").finished
