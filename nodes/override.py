"""RH Node Override: one `{nodeId, fieldName, value}` entry, chainable."""

from __future__ import annotations

import re
from typing import Any

from comfy_api.latest import io

from ..client.overrides import NodeOverride
from .sockets import CATEGORY, RH_OVERRIDES

_NODE_ID = re.compile(r"^[A-Za-z0-9_.\-]+(:[A-Za-z0-9_.\-]+)*$")


def build_entry(node_id: str, field_name: str, value: Any, text_value: str | None) -> NodeOverride:
    node_id = str(node_id or "").strip()
    field_name = str(field_name or "").strip()
    if not node_id:
        raise ValueError("RH Node Override: node_id is empty. Enter the remote node's id (e.g. 3, or 57:23 "
                         "inside a subgraph), or pick it with the field picker.")
    if not _NODE_ID.match(node_id):
        raise ValueError(f"RH Node Override: node_id {node_id!r} is not a node id (digits, or ids joined "
                         "by ':' for subgraphs, e.g. 57:23).")
    if not field_name:
        raise ValueError(f"RH Node Override (node {node_id}): field_name is empty. Enter the input's name "
                         "as in the workflow's API format (e.g. seed, text, image).")
    if value is None:
        return NodeOverride(node_id, field_name, text_value if text_value is not None else "", from_text=True)
    if isinstance(value, (bool, int, float, str)):
        return NodeOverride(node_id, field_name, value)
    raise ValueError(
        f"RH Node Override ({node_id}.{field_name}): a {type(value).__name__} cannot be sent as a field value. "
        "Wire a number, text or boolean; for images, audio and video, wire RH Upload's file_name.")


class RHNodeOverride(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RHNodeOverride",
            display_name="RH Node Override",
            category=CATEGORY,
            description=("Sets one input of a node in the remote RunningHub workflow (an entry of its "
                         "nodeInfoList). Chain several; a later entry for the same node and field wins."),
            inputs=[
                io.String.Input("node_id", default="",
                                tooltip="Id of the node in the remote workflow (e.g. 3; 57:23 inside a subgraph)."),
                io.String.Input("field_name", default="",
                                tooltip="Name of the node's input, as in the workflow's API format (e.g. seed, text)."),
                io.AnyType.Input("value", optional=True,
                                 tooltip="The value, wired from another node: numbers, text and booleans keep "
                                         "their type. For media, wire RH Upload's file_name."),
                io.String.Input("text_value", default="", multiline=True, optional=True,
                                tooltip="Typed value, used when nothing is wired to value. Converted to the "
                                        "remote field's type (int, float, bool) before sending."),
                RH_OVERRIDES.Input("overrides", optional=True,
                                   tooltip="Entries from earlier RH Node Override nodes (chain them)."),
            ],
            outputs=[RH_OVERRIDES.Output("overrides_out", display_name="overrides",
                                         tooltip="All entries so far, this one last.")],
        )

    @classmethod
    def execute(cls, node_id: str, field_name: str, value: Any = None, text_value: str | None = None,
                overrides: tuple | None = None) -> io.NodeOutput:
        entry = build_entry(node_id, field_name, value, text_value)
        chain = tuple(overrides or ()) + (entry,)  # a new tuple: upstream values are never mutated
        return io.NodeOutput(chain)
