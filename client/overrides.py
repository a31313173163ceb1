"""nodeInfoList entries, and their check against an API-format workflow before any billed call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .errors import BadOverride, InvalidNodeInfoError


@dataclass(frozen=True)
class NodeOverride:
    """One `{nodeId, fieldName, fieldValue}` entry. Values keep their type (int, float, bool, str).

    `from_text` marks a value typed into a text widget rather than wired: it is converted to
    the remote field's type (int, float, bool) once the remote workflow is known."""

    node_id: str
    field_name: str
    value: Any
    from_text: bool = False

    def to_wire(self) -> dict:
        return {"nodeId": self.node_id, "fieldName": self.field_name, "fieldValue": self.value}


def merge_overrides(entries: Iterable[NodeOverride]) -> list[NodeOverride]:
    """A later entry for the same node and field wins; order of first appearance is kept."""
    merged: dict[tuple[str, str], NodeOverride] = {}
    for entry in entries:
        merged[(entry.node_id, entry.field_name)] = entry
    return list(merged.values())


def describe_workflow_fields(workflow: dict) -> list[dict]:
    """Every overridable (non-link) input of an API-format workflow, for pickers and checks."""
    rows = []
    for node_id, node in workflow.items():
        if not isinstance(node, dict):
            continue
        title = (node.get("_meta") or {}).get("title") or node.get("class_type")
        for name, value in (node.get("inputs") or {}).items():
            if _is_link(value):
                continue
            rows.append({"nodeId": str(node_id), "classType": node.get("class_type"), "title": title,
                         "fieldName": name, "value": value, "valueType": type(value).__name__})
    return rows


def _is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def check_overrides(workflow: dict, overrides: Iterable[NodeOverride], *, workflow_id: str = "") -> None:
    """Raise InvalidNodeInfoError naming every entry whose node or field the workflow lacks.

    The same rule RunningHub applies (803), run locally so a mistake costs nothing."""
    bad: list[BadOverride] = []
    for entry in overrides:
        node = workflow.get(entry.node_id)
        if not isinstance(node, dict):
            bad.append(BadOverride(entry.node_id, entry.field_name, "no node with this id"))
            continue
        inputs = node.get("inputs") or {}
        if entry.field_name not in inputs:
            fields = ", ".join(sorted(k for k, v in inputs.items() if not _is_link(v))) or "none"
            bad.append(BadOverride(entry.node_id, entry.field_name,
                                   f"node {entry.node_id} ({node.get('class_type')}) has no field "
                                   f"'{entry.field_name}'; its fields: {fields}"))
    if bad:
        listing = "; ".join(f"{b.node_id}.{b.field_name}: {b.reason}" for b in bad)
        where = f"workflow {workflow_id}" if workflow_id else "the remote workflow"
        raise InvalidNodeInfoError(
            f"RH Node Override entries do not match {where}: {listing}. Pick node ids and fields with "
            "the field picker on RH Node Override, or fix them by hand.", bad=bad, code=803)


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce_text_values(workflow: dict, overrides: Iterable[NodeOverride]) -> list[NodeOverride]:
    """Typed-in text becomes the remote field's type (int, float or bool); wired values and
    string fields are left as they are. Raises InvalidNodeInfoError naming what cannot convert."""
    out: list[NodeOverride] = []
    bad: list[BadOverride] = []
    for entry in overrides:
        current = ((workflow.get(entry.node_id) or {}).get("inputs") or {}).get(entry.field_name)
        if not entry.from_text or not isinstance(entry.value, str) or isinstance(current, str) or current is None:
            out.append(entry)
            continue
        text = entry.value.strip()
        try:
            if isinstance(current, bool):
                if text.lower() not in _TRUE | _FALSE:
                    raise ValueError("expected true or false")
                value: Any = text.lower() in _TRUE
            elif isinstance(current, int):
                value = int(text)
            elif isinstance(current, float):
                value = float(text)
            else:
                value = entry.value
        except ValueError:
            kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(type(current), "a value")
            bad.append(BadOverride(entry.node_id, entry.field_name,
                                   f"{entry.value!r} is not {kind} (the remote field holds {current!r})"))
            continue
        out.append(NodeOverride(entry.node_id, entry.field_name, value))
    if bad:
        listing = "; ".join(f"{b.node_id}.{b.field_name}: {b.reason}" for b in bad)
        raise InvalidNodeInfoError(f"RH Node Override values do not fit the remote fields: {listing}.", bad=bad)
    return out
