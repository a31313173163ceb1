"""Override merging and checking; the poll schedule's arithmetic."""

import pytest

from support.pack import pack_module

ov = pack_module("client.overrides")
errors = pack_module("client.errors")
polling = pack_module("client.polling")

WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "model": ["4", 0]}, "_meta": {"title": "K"}},
    "57:23": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
}


def test_later_entry_for_same_field_wins_and_types_are_kept():
    merged = ov.merge_overrides([ov.NodeOverride("3", "seed", 1), ov.NodeOverride("3", "steps", 30),
                                 ov.NodeOverride("3", "seed", 2)])
    assert [(o.node_id, o.field_name, o.value) for o in merged] == [("3", "seed", 2), ("3", "steps", 30)]
    assert merged[0].to_wire() == {"nodeId": "3", "fieldName": "seed", "fieldValue": 2}


def test_check_names_every_bad_entry_and_accepts_subgraph_ids():
    ov.check_overrides(WORKFLOW, [ov.NodeOverride("57:23", "text", "a dog"), ov.NodeOverride("3", "seed", 1)])
    with pytest.raises(errors.InvalidNodeInfoError) as info:
        ov.check_overrides(WORKFLOW, [ov.NodeOverride("99", "seed", 1), ov.NodeOverride("3", "sead", 1)],
                           workflow_id="123")
    text = str(info.value)
    assert "99.seed: no node with this id" in text and "3.sead" in text and "seed, steps" in text
    assert "model" not in text.split("its fields:")[1]  # links are not fields one can override
    assert [b.node_id for b in info.value.bad] == ["99", "3"]


def test_describe_workflow_fields_lists_only_widget_values():
    rows = ov.describe_workflow_fields(WORKFLOW)
    assert {(r["nodeId"], r["fieldName"]) for r in rows} == {("3", "seed"), ("3", "steps"), ("57:23", "text")}
    assert next(r for r in rows if r["fieldName"] == "seed")["valueType"] == "int"


def _polls_for(policy, seconds):
    t, polls, interval = 0.0, 0, None
    while True:
        interval = policy.next_interval(t, interval)
        t += interval
        if t > seconds:
            return polls, t - seconds
        polls += 1


def test_schedule_notices_short_tasks_fast_and_spares_long_ones():
    policy = polling.PollPolicy()
    polls_short, _ = _polls_for(policy, 1.0)
    assert polls_short <= 5
    # the first poll after a 1 s task ends comes within one fast interval
    t, interval = 0.0, None
    while t <= 1.0:
        interval = policy.next_interval(t, interval)
        t += interval
    assert t - 1.0 <= policy.fast_interval
    polls_long, _ = _polls_for(policy, 60.0)
    assert polls_long <= 20, polls_long  # no more than one poll per 3 s on average
