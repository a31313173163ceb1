"""API-format workflows by id, and the nodeInfoList checks RunningHub does on them."""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import (
    APIKEY_INVALID_NODE_INFO,
    PARAMS_INVALID,
    WEBAPP_NOT_EXISTS,
    WORKFLOW_NOT_EXISTS,
    ApiError,
)

log = logging.getLogger("rhsim.workflows")

_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


@dataclass
class Override:
    node_id: str
    field_name: str
    field_value: Any

    def as_dict(self) -> dict:
        return {"nodeId": self.node_id, "fieldName": self.field_name, "fieldValue": self.field_value}


class WorkflowStore:
    """A folder of `<workflowId>.json` files. An AI-app id (`webappId`) maps to the same
    folder: `<webappId>.json`. Files are read on every lookup, so tests may add files
    while the simulator runs."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, workflow_id: str) -> Path | None:
        if not _ID_RE.match(workflow_id) or workflow_id.startswith("."):
            return None
        path = self.directory / f"{workflow_id}.json"
        return path if path.is_file() else None

    def load(self, workflow_id: str, *, webapp: bool = False) -> dict:
        path = self._path(str(workflow_id))
        if path is None:
            raise ApiError(WEBAPP_NOT_EXISTS if webapp else WORKFLOW_NOT_EXISTS)
        try:
            graph = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("workflow %s is unreadable: %s", path, exc)
            raise ApiError(WEBAPP_NOT_EXISTS if webapp else WORKFLOW_NOT_EXISTS) from exc
        return check_graph_shape(graph)

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.json"))


def check_graph_shape(graph: Any) -> dict:
    if not isinstance(graph, dict) or not all(
        isinstance(node, dict) and isinstance(node.get("class_type"), str) for node in graph.values()
    ):
        raise ApiError(PARAMS_INVALID, "workflow is not an API-format prompt ({nodeId: {class_type, inputs}})")
    for node in graph.values():
        node.setdefault("inputs", {})
    return graph


def parse_graph_string(text: Any) -> dict:
    """The optional `workflow` parameter of create: a full API-format prompt as a string."""
    if isinstance(text, dict):
        return check_graph_shape(copy.deepcopy(text))
    if not isinstance(text, str):
        raise ApiError(PARAMS_INVALID, "workflow must be a JSON string")
    try:
        return check_graph_shape(json.loads(text))
    except ValueError as exc:
        raise ApiError(PARAMS_INVALID, f"workflow is not valid JSON: {exc}") from exc


def parse_node_info_list(raw: Any) -> list[Override]:
    """Shape checks only (301); matching against the workflow is `check_overrides`."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(PARAMS_INVALID, "nodeInfoList must be a list")
    result = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ApiError(PARAMS_INVALID, f"nodeInfoList[{index}] must be an object")
        node_id, field_name = item.get("nodeId"), item.get("fieldName")
        if node_id is None or field_name is None or "fieldValue" not in item:
            raise ApiError(
                PARAMS_INVALID, f"nodeInfoList[{index}] needs nodeId, fieldName and fieldValue"
            )
        if isinstance(node_id, bool) or not isinstance(node_id, (str, int)) or not isinstance(field_name, str):
            raise ApiError(PARAMS_INVALID, f"nodeInfoList[{index}]: nodeId and fieldName must be strings")
        result.append(Override(str(node_id), field_name, item["fieldValue"]))
    return result


def check_overrides(graph: dict, overrides: list[Override]) -> None:
    """803 when an entry does not match a node id or one of its input fields (the log names
    every such entry)."""
    bad = []
    for ov in overrides:
        node = graph.get(ov.node_id)
        if node is None:
            bad.append(f"nodeId {ov.node_id!r} (fieldName {ov.field_name!r}): no such node")
        elif ov.field_name not in node.get("inputs", {}):
            fields = ", ".join(sorted(node.get("inputs", {}))) or "none"
            bad.append(
                f"nodeId {ov.node_id!r} ({node['class_type']}) has no field {ov.field_name!r}"
                f" (fields: {fields})"
            )
    if bad:  # the reply's msg is the bare constant, as the service's; the details go to the log
        log.info("803 APIKEY_INVALID_NODE_INFO: %s", "; ".join(bad))
        raise ApiError(APIKEY_INVALID_NODE_INFO)


def apply_overrides(graph: dict, overrides: list[Override]) -> dict:
    """A deep copy of `graph` with every override applied; values keep their JSON type."""
    result = copy.deepcopy(graph)
    for ov in overrides:
        result[ov.node_id]["inputs"][ov.field_name] = copy.deepcopy(ov.field_value)
    return result
