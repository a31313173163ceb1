"""Does the remote ComfyUI have what a prompt uses? Checked against its `/object_info`
before anything is uploaded or submitted, so a group that cannot run costs nothing.

Every node class of the prompt must be there, and every combo value the prompt sets (model
files included: a checkpoint, LoRA or VAE name is a combo value of its loader) must be one
of the remote's options. Everything missing is listed in one error. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..client.errors import RunningHubError
from .group_prompt import is_link, node_label

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx", ".pkl")


class MissingOnRemoteError(RunningHubError):
    """The remote ComfyUI lacks node classes or combo values (model files) the prompt uses."""

    def __init__(self, message: str, *, missing_classes: list[str], missing_values: list[dict],
                 site: str | None = None):
        super().__init__(message, site=site)
        self.missing_classes = missing_classes
        self.missing_values = missing_values


@dataclass(frozen=True)
class Missing:
    classes: dict[str, list[str]]  # class -> labels of the nodes using it
    values: list[dict]  # {node, input, value, model}

    def __bool__(self) -> bool:
        return bool(self.classes or self.values)


def combo_options(spec: Any) -> list | None:
    """The options of an object_info input spec when it is a combo: `[[options...], {...}]`
    (classic nodes) or `["COMBO", {"options": [...]}]` (V3 nodes); None otherwise (or when the
    options are fetched elsewhere, e.g. a remote combo)."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    head = spec[0]
    if isinstance(head, list):
        return head
    if head == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"), list):
        return spec[1]["options"]
    return None


def _input_specs(info: Mapping) -> dict[str, Any]:
    specs: dict[str, Any] = {}
    for section in ("required", "optional"):
        part = (info.get("input") or {}).get(section) or {}
        if isinstance(part, dict):
            specs.update(part)
    return specs


def find_missing(prompt: Mapping[str, Mapping], object_info: Mapping[str, Any],
                 skip: Iterable[tuple[str, str]] = ()) -> Missing:
    """What `prompt` uses that `object_info` lacks; `skip`: (node id, input) pairs not to
    check (fields that will name a file uploaded just before submitting)."""
    skipped = set(skip)
    classes: dict[str, list[str]] = {}
    values: list[dict] = []
    for node_id, node in prompt.items():
        cls = str(node.get("class_type"))
        info = object_info.get(cls)
        if not isinstance(info, Mapping):
            classes.setdefault(cls, []).append(node_label(prompt, node_id))
            continue
        specs = _input_specs(info)
        for name, value in (node.get("inputs") or {}).items():
            if (node_id, name) in skipped or is_link(value) or name not in specs:
                continue
            options = combo_options(specs[name])
            if options is None:
                continue
            wanted = value if isinstance(value, list) else [value]  # multi-select combos
            for item in wanted:
                if isinstance(item, (str, int, float)) and item not in options:
                    model = isinstance(item, str) and item.lower().endswith(MODEL_SUFFIXES)
                    values.append({"node": node_label(prompt, node_id), "node_id": node_id, "input": name,
                                   "value": item, "model": model})
    return Missing(classes, values)


def missing_error(missing: Missing, *, what: str, host: str, site: str | None = None) -> MissingOnRemoteError:
    """One error listing everything missing; `what` names the prompt (e.g. 'Group "Upscale"')."""
    lines: list[str] = []
    for cls, users in missing.classes.items():
        lines.append(f"- node class {cls} (used by {', '.join(users)}): not installed on {host}")
    for v in missing.values:
        kind = "model file" if v["model"] else "value"
        lines.append(f"- {kind} {v['value']!r} ({v['input']} of {v['node']}): not on {host}")
    hints = []
    if missing.classes:
        hints.append("run nodes RunningHub lacks locally (move them out of the group)")
    if any(v["model"] for v in missing.values):
        hints.append("upload the model files to your RunningHub model library, or pick models RunningHub has")
    if any(not v["model"] for v in missing.values):
        hints.append("pick values the remote lists (a file a node inside the group loads from this machine is not "
                     "on RunningHub: keep its Load node outside the group, so the file is uploaded)")
    return MissingOnRemoteError(
        f"{what} cannot run on RunningHub ({host}); nothing was uploaded or billed. Missing there:\n"
        + "\n".join(lines) + ("\nTo fix: " + "; ".join(hints) + "." if hints else ""),
        missing_classes=list(missing.classes), missing_values=missing.values, site=site)
