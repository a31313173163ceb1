"""What a finished native prompt's /history means: NativePromptResult on success, else
TaskFailedError naming the remote node and its exception, or TaskCancelledError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..client.errors import FailureReason, TaskCancelledError, TaskFailedError
from ..client.native import FileRef, NativeClient
from ..client.redact import scrub

MAX_TRACEBACK_LINES = 6


@dataclass(frozen=True)
class NativePromptResult:
    """A prompt that ended with success. `outputs` is its /history `outputs` dict
    (`{node_id: {"images": [{filename, subfolder, type}], "text": [...]}}`); download a file
    with `native.download(file_ref)`: `native` is the client of the key that ran it."""

    prompt_id: str
    outputs: dict
    native: NativeClient
    status: dict | None = None  # the history's status (status_str, completed, messages)
    reattached: bool = False  # an earlier run's prompt (followed again or reused): nothing new billed
    elapsed: float = 0.0

    def files(self, node_id: str | None = None) -> list[FileRef]:
        """Every file reference of the outputs (of one node), in order."""
        found = []
        for nid, output in self.outputs.items():
            if node_id is not None and str(nid) != str(node_id) or not isinstance(output, dict):
                continue
            for items in output.values():
                for item in items if isinstance(items, list) else ():
                    try:
                        found.append(FileRef.parse(item))
                    except ValueError:
                        continue
        return found


def _messages(history: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    status = history.get("status") if isinstance(history.get("status"), Mapping) else {}
    for item in status.get("messages") or ():
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], Mapping):
            yield str(item[0]), dict(item[1])


def failure_reason(data: Mapping[str, Any]) -> FailureReason:
    """ComfyUI's `execution_error` payload as the pack's FailureReason (scrubbed, capped)."""
    tb = data.get("traceback")
    lines = [str(x).rstrip() for x in tb] if isinstance(tb, list) else str(tb or "").splitlines()
    tail = [scrub(line) for line in "\n".join(lines).splitlines() if line.strip()][-MAX_TRACEBACK_LINES:]

    def text(name: str, cap: int = 500) -> str | None:
        value = data.get(name)
        return scrub(str(value)).strip()[:cap] or None if value is not None else None

    return FailureReason(node_id=text("node_id", 64), node_name=text("node_type", 80),
                         exception_type=text("exception_type", 120), exception_message=text("exception_message"),
                         traceback_tail=tail)


def decide(native: NativeClient, prompt_id: str, history: Mapping[str, Any], *, elapsed: float = 0.0,
           reattached: bool = False) -> NativePromptResult:
    """The result of a finished prompt, or TaskFailedError naming the remote node and its
    exception, or TaskCancelledError when it was interrupted."""
    status = history.get("status") if isinstance(history.get("status"), Mapping) else {}
    messages = dict(_messages(history))
    site = native.site.name
    if "execution_error" in messages:
        reason = failure_reason(messages["execution_error"])
        message = f"RunningHub prompt {prompt_id} failed at {reason.describe()}"
        if reason.traceback_tail:
            message += "\nRemote traceback (last lines):\n" + "\n".join(reason.traceback_tail)
        raise TaskFailedError(message, reason=reason, task_id=prompt_id, site=site)
    if "execution_interrupted" in messages:
        data = messages["execution_interrupted"]
        where = f" at remote node {data.get('node_id')} ({data.get('node_type')})" if data.get("node_id") else ""
        raise TaskCancelledError(f"RunningHub prompt {prompt_id} was interrupted{scrub(where)}.",
                                 reason=FailureReason(raw_message="interrupted"), task_id=prompt_id, site=site)
    status_str = str(status.get("status_str") or ("success" if status.get("completed", True) else "error"))
    if status_str != "success":
        raise TaskFailedError(f"RunningHub prompt {prompt_id} ended with status {scrub(status_str)!r} and no error "
                              "message.", reason=FailureReason(raw_message=status_str), task_id=prompt_id, site=site)
    outputs = history.get("outputs") if isinstance(history.get("outputs"), dict) else {}
    return NativePromptResult(prompt_id, outputs, native, status=dict(status), reattached=reattached,
                              elapsed=elapsed)
