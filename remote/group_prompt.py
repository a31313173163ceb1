"""A group of the user's own graph as one remote prompt: the border analysis and the prompt
sent to RunningHub's native ComfyUI endpoint. Pure Python: no ComfyUI, no torch.

`convert(prompt, groups, output_types)` runs at queue time (the route the front end calls):
it takes the API prompt and, for each group marked "Run on RunningHub", the ids of its
nodes, and returns the prompt with the group's nodes replaced by one `RHRemoteGroup` node
whose `group` input is the spec (`GroupSpec.to_json()`): the group's own API nodes, the
links entering it (`in_0…`) and the links leaving it (`out_0…`). Every link crossing the
border is typed from its local source node's RETURN_TYPES (`output_types(class_type)`; a
list of options is a combo value, COMBO). Only these types cross:

- into the group: IMAGE and MASK (uploaded as PNG files), STRING, INT, FLOAT, BOOLEAN and
  COMBO (their values are written into the remote prompt);
- out of it: IMAGE, MASK (saved by the remote as PNG files, downloaded) and STRING (a
  remote Preview as Text node's text).

Anything else (a MODEL, LATENT, CONDITIONING, ...) is refused before anything is sent,
naming every such link and its type in one error.

`remote_prompt(spec, inline, files)` runs at execution time (RH Remote Group): it writes
the inlined values into the group's nodes, adds a remote Load Image (or Load Image (as
Mask), channel red or alpha) per uploaded file (several joined by Batch Images) and an output
node per group output (Save Image; Convert Mask to Image → Save Image; Preview as Text).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

GROUP_CLASS = "RHRemoteGroup"
SPEC_VERSION = 1
MAX_PORTS = 16  # in_0..in_15, out_0..out_15 on RH Remote Group
UPLOADED_INPUTS = ("IMAGE", "MASK")
INLINED_INPUTS = ("STRING", "INT", "FLOAT", "BOOLEAN", "COMBO")
INPUT_TYPES = UPLOADED_INPUTS + INLINED_INPUTS
OUTPUT_TYPES = ("IMAGE", "MASK", "STRING")
OUTPUT_PREFIX = "RunningHubBridge/group"  # filename_prefix of the remote Save Image nodes

#: Node classes the pack adds to a remote prompt (checked on the remote like the group's own).
ADDED_CLASSES = ("LoadImage", "LoadImageMask", "ImageBatch", "ImageToMask", "SaveImage", "MaskToImage",
                 "PreviewAny")

BORDER_RULE = ("Links entering a group may carry IMAGE, MASK, STRING, INT, FLOAT, BOOLEAN or a combo value; "
               "links leaving it IMAGE, MASK or STRING.")

OutputTypes = Callable[[str], Sequence[Any]]


class GroupError(ValueError):
    """A group cannot run on RunningHub as it is; the message says why and what to do.
    Raised before anything is sent (the convert route answers it as 400)."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class GroupInput:
    name: str  # in_0 ...
    type: str  # IMAGE, MASK, STRING, INT, FLOAT, BOOLEAN, COMBO
    to: tuple[tuple[str, str], ...]  # (group node id, input name) it feeds
    source: str = ""  # label of the local source, for messages

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "to": [list(t) for t in self.to], "from": self.source}


@dataclass(frozen=True)
class GroupOutput:
    name: str  # out_0 ...
    type: str  # IMAGE, MASK, STRING
    source: tuple[str, int]  # (group node id, output slot)
    label: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "from": list(self.source), "label": self.label}


@dataclass(frozen=True)
class GroupSpec:
    """What RH Remote Group's `group` input carries (JSON, `version` 1)."""

    title: str
    prompt: dict  # the group's API nodes, border inputs removed
    inputs: tuple[GroupInput, ...] = ()
    outputs: tuple[GroupOutput, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"version": SPEC_VERSION, "title": self.title, "prompt": self.prompt,
                           "inputs": [i.to_json() for i in self.inputs],
                           "outputs": [o.to_json() for o in self.outputs]},
                          ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | Mapping) -> "GroupSpec":
        """The spec of RH Remote Group's `group` input; GroupError when it is not one."""
        try:
            data = json.loads(text) if isinstance(text, str) else dict(text)
        except ValueError:
            raise GroupError("RH Remote Group: its 'group' input is not JSON. It is written by the front end when "
                             "a group is marked 'Run on RunningHub' (or by POST /runninghub/group/convert); "
                             "queue the graph again from the front end.") from None
        if not isinstance(data, dict) or data.get("version") != SPEC_VERSION:
            raise GroupError(f"RH Remote Group: its 'group' input is not a version {SPEC_VERSION} group spec; "
                             "queue the graph again from the front end (or convert it again).")
        prompt = data.get("prompt")
        if not isinstance(prompt, dict) or not prompt or not all(
                isinstance(n, dict) and isinstance(n.get("class_type"), str) for n in prompt.values()):
            raise GroupError("RH Remote Group: the group spec holds no API-format nodes.")
        try:
            inputs = tuple(GroupInput(str(i["name"]), str(i["type"]), tuple((str(n), str(f)) for n, f in i["to"]),
                                      str(i.get("from") or "")) for i in data.get("inputs") or [])
            outputs = tuple(GroupOutput(str(o["name"]), str(o["type"]), (str(o["from"][0]), int(o["from"][1])),
                                        str(o.get("label") or "")) for o in data.get("outputs") or [])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise GroupError(f"RH Remote Group: the group spec's inputs or outputs are malformed ({exc}).") from None
        for port in inputs:
            if port.type not in INPUT_TYPES:
                raise GroupError(f"RH Remote Group: input {port.name} has type {port.type}, which cannot enter a "
                                 f"group. {BORDER_RULE}")
        for port in outputs:
            if port.type not in OUTPUT_TYPES:
                raise GroupError(f"RH Remote Group: output {port.name} has type {port.type}, which cannot leave a "
                                 f"group. {BORDER_RULE}")
        return cls(str(data.get("title") or "group"), prompt, inputs, outputs)


@dataclass(frozen=True)
class GroupRequest:
    """One group to convert, as the front end sends it."""

    title: str
    node_ids: tuple[str, ...]
    account: str = "default"

    @classmethod
    def parse(cls, raw: Any, index: int = 0) -> "GroupRequest":
        if not isinstance(raw, Mapping):
            raise GroupError(f"groups[{index}] must be an object {{title, node_ids, account}}.")
        title = raw.get("title")
        node_ids = raw.get("node_ids")
        account = raw.get("account") or "default"
        if title is not None and not isinstance(title, str):
            raise GroupError(f"groups[{index}].title must be text.")
        if not isinstance(node_ids, list) or not node_ids or not all(isinstance(n, (str, int)) for n in node_ids):
            raise GroupError(f"groups[{index}].node_ids must be a non-empty list of node ids.")
        if not isinstance(account, str):
            raise GroupError(f"groups[{index}].account must be a profile name.")
        return cls(title or f"Group {index + 1}", tuple(str(n) for n in node_ids), account)


@dataclass
class Converted:
    """The local prompt after `convert`, and what became of each group."""

    prompt: dict
    groups: list[dict] = field(default_factory=list)  # {title, node_id, inputs, outputs}


# --------------------------------------------------------------------------- helpers


def is_link(value: Any) -> bool:
    """ComfyUI's API-format link: [source node id, output slot]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def node_label(prompt: Mapping, node_id: str) -> str:
    """`"Title" (ClassType #id)`, or `ClassType #id` when the title is the class name."""
    node = prompt.get(node_id) or {}
    cls = str(node.get("class_type") or "?")
    title = (node.get("_meta") or {}).get("title") if isinstance(node.get("_meta"), dict) else None
    if title and title != cls:
        return f'"{title}" ({cls} #{node_id})'
    return f"{cls} #{node_id}"


def type_name(raw: Any) -> str:
    """A RETURN_TYPES entry as a type name: a list of options is a combo value (COMBO)."""
    if isinstance(raw, (list, tuple)):
        return "COMBO"
    return str(raw)


def in_group(node_id: str, ids: set[str]) -> bool:
    """Whether a prompt node belongs to a group of `ids`: its own id is one, or it lies inside a
    subgraph node that is (ComfyUI names the nodes of subgraph 57 `57:23`, `57:30:2`, ...)."""
    parts = str(node_id).split(":")
    return any(":".join(parts[:k]) in ids for k in range(1, len(parts) + 1))


# --------------------------------------------------------------------------- convert


def convert(prompt: Mapping[str, Any], groups: Iterable[GroupRequest | Mapping],
            output_types: OutputTypes) -> Converted:
    """The prompt with each group replaced by one RH Remote Group node; GroupError (naming
    every refused link and its type) when a group cannot run remotely. `prompt` is not changed."""
    if not isinstance(prompt, Mapping) or not prompt:
        raise GroupError("'prompt' must be an API-format prompt (an object of nodes).")
    out = copy.deepcopy(dict(prompt))
    requests = [g if isinstance(g, GroupRequest) else GroupRequest.parse(g, i) for i, g in enumerate(groups)]
    claimed: dict[str, str] = {}
    for request in requests:
        ids = set(request.node_ids)
        for node_id in out:
            if not in_group(node_id, ids):
                continue
            if node_id in claimed:
                raise GroupError(f"{node_label(out, node_id)} is in two groups marked 'Run on RunningHub' "
                                 f"(\"{claimed[node_id]}\" and \"{request.title}\"); a node can run in one only.")
            claimed[node_id] = request.title
    added: dict[str, list[str]] = {}  # RH Remote Group node id -> its output types
    result = Converted(out)

    def types_of(node_id: str) -> list[str] | None:
        if node_id in added:
            return added[node_id]
        node = out.get(node_id)
        if node is None:
            return None
        try:
            raw = output_types(str(node.get("class_type")))
        except Exception:  # noqa: BLE001 - an unknown class: reported as such below
            return None
        return None if raw is None else [type_name(t) for t in raw]

    for request in requests:
        group_id = _free_id(out, "rh-group-")
        spec = _one_group(out, request, types_of)
        added[group_id] = [o.type for o in spec.outputs]
        _replace(out, request, spec, group_id)
        result.groups.append({"title": request.title, "node_id": group_id,
                              "inputs": [i.to_json() for i in spec.inputs],
                              "outputs": [o.to_json() for o in spec.outputs]})
    return result


def _free_id(prompt: Mapping, prefix: str) -> str:
    n = 1
    while f"{prefix}{n}" in prompt:
        n += 1
    return f"{prefix}{n}"


def _one_group(prompt: dict, request: GroupRequest, types_of: Callable[[str], list[str] | None]) -> GroupSpec:
    ids = set(request.node_ids)
    # prompt order; ids not in the prompt (muted nodes, notes) are nobody's business here
    members = [n for n in prompt if in_group(n, ids)]
    if not members:
        raise GroupError(f"Group \"{request.title}\" has no node that would run (all muted or bypassed?); "
                         "unmark 'Run on RunningHub' or add nodes to it.")
    inside = set(members)
    problems: list[str] = []
    ins: dict[tuple[str, int], list[tuple[str, str]]] = {}
    outs: dict[tuple[str, int], list[tuple[str, str]]] = {}

    def link_type(src: str, slot: int) -> str | None:
        types = types_of(src)
        if types is None or not 0 <= slot < len(types):
            return None
        return types[slot]

    for node_id in members:
        for name, value in (prompt[node_id].get("inputs") or {}).items():
            if is_link(value) and str(value[0]) not in inside:
                ins.setdefault((str(value[0]), int(value[1])), []).append((node_id, name))
    for node_id, node in prompt.items():
        if node_id in inside or not isinstance(node, dict):
            continue
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value) and str(value[0]) in inside:
                outs.setdefault((str(value[0]), int(value[1])), []).append((node_id, name))

    inputs: list[GroupInput] = []
    for (src, slot), targets in ins.items():
        kind = link_type(src, slot)
        link = _link_text(prompt, src, slot, targets[0])
        if src not in prompt:
            problems.append(f"the link {link} comes from a node that is not in the prompt")
        elif (why := _refusal(prompt, src, slot, kind, link, INPUT_TYPES)) is not None:
            problems.append(why)
        else:
            inputs.append(GroupInput(f"in_{len(inputs)}", kind, tuple(targets), _source_text(prompt, src, slot, kind)))
    outputs: list[GroupOutput] = []
    for (src, slot), targets in outs.items():
        kind = link_type(src, slot)
        link = _link_text(prompt, src, slot, targets[0])
        if (why := _refusal(prompt, src, slot, kind, link, OUTPUT_TYPES)) is not None:
            problems.append(why)
        else:
            outputs.append(GroupOutput(f"out_{len(outputs)}", kind, (src, slot), _source_text(prompt, src, slot, kind)))
    if problems:
        listing = "\n".join(f"- {p}" for p in problems)
        raise GroupError(f"Group \"{request.title}\" cannot run on RunningHub; nothing was sent:\n{listing}\n"
                         f"{BORDER_RULE} Move the nodes at the ends of these links into the group or out of it, "
                         "so that only such values cross its border.")
    for what, ports in (("inputs", inputs), ("outputs", outputs)):
        if len(ports) > MAX_PORTS:
            raise GroupError(f"Group \"{request.title}\" has {len(ports)} {what} (different values crossing its "
                             f"border); RH Remote Group takes at most {MAX_PORTS}. Split the group.")

    nodes = {n: copy.deepcopy(prompt[n]) for n in members}
    for port in inputs:
        for node_id, name in port.to:
            del nodes[node_id]["inputs"][name]  # filled in at execution time
    return GroupSpec(request.title, nodes, tuple(inputs), tuple(outputs))



def _refusal(prompt: dict, src: str, slot: int, kind: str | None, link: str, allowed) -> str | None:
    """Why a link may not cross the group's border (its type unknown or not `allowed`), or None."""
    if kind is None:
        return (f"the link {link}: the type of {node_label(prompt, src)}'s output {slot} is unknown "
                "(is its node pack installed here?)")
    if kind not in allowed:
        return f"the link {link} carries {kind}"
    return None

def _source_text(prompt: Mapping, src: str, slot: int, kind: str) -> str:
    return f"{node_label(prompt, src)} output {slot} ({kind})"


def _link_text(prompt: Mapping, src: str, slot: int, target: tuple[str, str]) -> str:
    node_id, name = target
    return f"from {node_label(prompt, src)} output {slot} to {node_label(prompt, node_id)} input '{name}'"


def _replace(prompt: dict, request: GroupRequest, spec: GroupSpec, group_id: str) -> None:
    """In place: the group's nodes out, the RH Remote Group node in, downstream links rewired."""
    inputs: dict[str, Any] = {"group": spec.to_json(), "account": request.account}
    for port in spec.inputs:
        node_id, name = port.to[0]
        inputs[port.name] = list(prompt[node_id]["inputs"][name])
    for node_id in spec.prompt:
        del prompt[node_id]
    by_source = {o.source: k for k, o in enumerate(spec.outputs)}
    for node in prompt.values():
        if not isinstance(node, dict):
            continue
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value) and (str(value[0]), int(value[1])) in by_source:
                node["inputs"][name] = [group_id, by_source[(str(value[0]), int(value[1]))]]
    prompt[group_id] = {"class_type": GROUP_CLASS, "inputs": inputs, "_meta": {"title": request.title}}


# --------------------------------------------------------------------------- remote prompt


@dataclass(frozen=True)
class RemotePrompt:
    """The prompt sent to RunningHub, and where to find each group output in its history."""

    prompt: dict
    output_nodes: dict[str, str]  # out_k -> the remote node whose history outputs hold it
    uploaded_fields: frozenset[tuple[str, str]]  # (node id, input) holding an uploaded file's name


def remote_prompt(spec: GroupSpec, inline: Mapping[str, Any], files: Mapping[str, Sequence[str]],
                  mask_channels: Mapping[str, str] | None = None) -> RemotePrompt:
    """The remote prompt of `spec`: `inline[in_k]` written into the inputs it feeds, the uploaded
    `files[in_k]` (one remote file name per batch item) loaded by added nodes (a single mask
    from the channel `mask_channels[in_k]`, default red), and an output node per group
    output. Node ids the pack adds are numbers above the group's."""
    prompt = copy.deepcopy(spec.prompt)
    next_id = [1 + max((int(p) for n in prompt for p in str(n).split(":") if p.isdigit()), default=0)]
    uploaded: set[tuple[str, str]] = set()

    def add(class_type: str, inputs: dict, title: str) -> str:
        node_id = str(next_id[0])
        next_id[0] += 1
        prompt[node_id] = {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}
        return node_id

    def batch(ids: list[str], title: str) -> str:
        first = ids[0]
        for other in ids[1:]:
            first = add("ImageBatch", {"image1": [first, 0], "image2": [other, 0]}, title)
        return first

    for port in spec.inputs:
        if port.type in UPLOADED_INPUTS:
            names = list(files.get(port.name) or ())
            if not names:
                raise GroupError(f"RH Remote Group: nothing was uploaded for {port.name} ({port.source}).")
            title = f"RH {port.name}"
            if port.type == "MASK" and len(names) == 1:
                channel = (mask_channels or {}).get(port.name, "red")
                source = add("LoadImageMask", {"image": names[0], "channel": channel}, title)
                uploaded.add((source, "image"))
            else:
                loads = [add("LoadImage", {"image": name}, title) for name in names]
                uploaded.update((n, "image") for n in loads)
                source = batch(loads, title)
                if port.type == "MASK":
                    source = add("ImageToMask", {"image": [source, 0], "channel": "red"}, title)
            value: Any = [source, 0]
        else:
            if port.name not in inline:
                raise GroupError(f"RH Remote Group: no value for {port.name} ({port.source}).")
            value = inline[port.name]
        for node_id, name in port.to:
            prompt[node_id]["inputs"][name] = copy.deepcopy(value)

    output_nodes: dict[str, str] = {}
    for port in spec.outputs:
        title = f"RH {port.name}"
        src = list(port.source)
        if port.type == "STRING":
            output_nodes[port.name] = add("PreviewAny", {"source": src}, title)
            continue
        if port.type == "MASK":
            src = [add("MaskToImage", {"mask": src}, title), 0]
        output_nodes[port.name] = add("SaveImage", {"images": src, "filename_prefix": f"{OUTPUT_PREFIX}_{port.name}"},
                                      title)
    return RemotePrompt(prompt, output_nodes, frozenset(uploaded))
