"""Thin wrappers over ComfyUI runtime modules, imported lazily so that importing the pack
stays cheap and the layers below never see ComfyUI."""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..remote.status import RunStatus

log = logging.getLogger("runninghub_bridge.host")

STATUS_EVENT = "runninghub.status"


def interrupt_requested() -> bool:
    """True once the user pressed Cancel / Interrupt in ComfyUI (safe from any thread).

    Only reads the flag: `throw_exception_if_processing_interrupted` would clear it, and
    every other run of the prompt would then miss the stop."""
    import comfy.model_management as mm

    return mm.processing_interrupted()


def interrupt_exception() -> type[BaseException]:
    """ComfyUI's InterruptProcessingException. It derives from Exception in 0.3.75 and from
    BaseException in newer ComfyUI, so the pack catches it by name, never through
    `except Exception`, and behaves the same on both."""
    import comfy.model_management as mm

    return mm.InterruptProcessingException


def raise_interrupt() -> None:
    """Raise ComfyUI's own interrupt exception, so the run ends as 'interrupted'. Called on
    the node's event loop only, after the pack's own wait has stopped and cancelled."""
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()
    raise mm.InterruptProcessingException()


def executing_context() -> tuple[str | None, int | None]:
    """(prompt id, list index) of the node call running in this context; (None, None)
    outside ComfyUI's executor. A list-mapped node is called once per index."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None, None
    ctx = get_executing_context()
    return (ctx.prompt_id, ctx.list_index) if ctx is not None else (None, None)


def _prompt_server():
    """ComfyUI's running PromptServer, or None outside a ComfyUI server (e.g. a script)."""
    try:
        from server import PromptServer

        return PromptServer.instance
    except Exception:  # noqa: BLE001 - no server module, or no instance yet
        return None


def send_status(node_id: str | None, status: "RunStatus", *, text: str | None = None, index: int = 0, runs: int = 1,
                warnings: tuple[str, ...] = (), prompt_id: str | None = None) -> None:
    """`status` (remote/status.py) under the node: ComfyUI's progress text (`text`, default
    the status line) plus the typed `runninghub.status` event the front end renders, to the
    front end that queued the prompt. A prompt queued without a client id (a script) gets
    none: ComfyUI would send them to every socket on `/ws`, which any web page can open, and
    they name the task and its cost. Nor does a run of `prompt_id` once another prompt runs
    (see `_running`).

    Safe from worker threads: the server queues messages thread-safely."""
    server = _prompt_server()
    if server is None or getattr(server, "client_id", None) is None or not _running(server, prompt_id):
        return
    if node_id is not None:
        text = status.line if text is None else text
        server.send_progress_text(text, node_id, server.client_id)
        server.send_sync(STATUS_EVENT, {"node": str(node_id), "text": text,
                                        **status.to_event(index, runs, warnings)}, server.client_id)


def _running(server, prompt_id: str | None) -> bool:
    """False once ComfyUI runs a prompt other than `prompt_id`: a run ComfyUI abandoned (another
    node failed) winds down in its thread while the next prompt runs, and its status would land
    under the same node id of that prompt, on that prompt's front end. `server.client_id` and
    `last_prompt_id` are the newest prompt's. True without a prompt id (outside a prompt)."""
    current = getattr(server, "last_prompt_id", None)
    return prompt_id is None or current is None or current == prompt_id


def broadcast(event: str, data: dict[str, Any]) -> None:
    """A JSON event to every open front end (e.g. the task panel); safe from worker threads."""
    server = _prompt_server()
    if server is None:
        return
    server.send_sync(event, data, None)


def set_progress(node_id: str | None, value: float, total: float, prompt_id: str | None = None) -> None:
    """The node's progress bar in the front end, sent without ComfyUI's progress hook.

    The hook (main.py `hijack_progress`, 0.3.75 and newer) calls
    `throw_exception_if_processing_interrupted`, which clears the interrupt flag and raises
    in the calling thread: from a worker thread that swallowed the user's Cancel before the
    pack saw it, so the remote task ran on. Call this on the prompt's event loop, where
    ComfyUI updates the same progress registry."""
    if node_id is None:
        return
    server = _prompt_server()
    if server is None or getattr(server, "client_id", None) is None or not _running(server, prompt_id):
        return  # a script's prompt: ComfyUI would send it to every socket (see send_status)
    from comfy_execution.progress import get_progress_state

    get_progress_state().update_progress(str(node_id), value, total)
    server.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id or getattr(server, "last_prompt_id", None),
                                  "node": str(node_id)}, server.client_id)


def temp_dir() -> str:
    import folder_paths

    return folder_paths.get_temp_directory()


def user_dir() -> str:
    import folder_paths

    return folder_paths.get_user_directory()


def credentials_path() -> str:
    """`<ComfyUI user dir>/runninghub/credentials.json`: outside the pack, so updates keep it."""
    return os.path.join(user_dir(), "runninghub", "credentials.json")


def ledger_path() -> str:
    """`<ComfyUI user dir>/runninghub/tasks.sqlite3`: the task ledger, kept across restarts."""
    return os.path.join(user_dir(), "runninghub", "tasks.sqlite3")


def new_temp_file(suffix: str) -> str:
    folder = os.path.join(temp_dir(), "runninghub")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{uuid.uuid4().hex}{suffix}")


def video_from_file(path: str):
    from comfy_api.latest import InputImpl

    return InputImpl.VideoFromFile(path)


def execution_blocker(message: str):
    """Blocks the nodes wired to an output that has nothing to give, with `message`."""
    from comfy_execution.graph_utils import ExecutionBlocker

    return ExecutionBlocker(message)


def video_has_edits(video) -> bool:
    """True when a VIDEO value would play differently from its source file.

    Version shim: ComfyUI 0.3.75's VIDEO values are always their whole file; 0.33 adds a
    trim window (`get_active_trim_window()`, set by the core "Trim Video" node: `as_trimmed`);
    0.38 adds pending frame edits such as crops (`has_pending_frame_edits()`). Both are read
    when present, so one code path serves every version."""
    trim_window = getattr(video, "get_active_trim_window", None)
    if trim_window is not None:
        start, duration = trim_window()
        if start or duration:
            return True
    pending = getattr(video, "has_pending_frame_edits", None)
    return bool(pending is not None and pending())


def _source_file_bytes(video) -> bytes:
    """The bytes of the file behind a VIDEO value, or b"" when it has none (e.g. frames)."""
    source = video.get_stream_source()
    if isinstance(source, str):
        with open(source, "rb") as fh:
            return fh.read()
    if hasattr(source, "read"):
        source.seek(0)
        return source.read()
    return b""


def video_file_bytes(video) -> bytes:
    """The bytes of a ComfyUI VIDEO value as a file RunningHub accepts.

    An unedited video that already is a file in an accepted container is sent as it is (no
    re-encode, no quality loss); a trimmed or otherwise edited one, or one without such a
    file, is written as MP4 (H.264) by ComfyUI itself, whose `save_to` applies the edits."""
    import io as _io

    from ..media.sniff import sniff

    if not video_has_edits(video):
        data = _source_file_bytes(video)
        if data and sniff(data, label="video").upload_type == "video":
            return data
    buf = _io.BytesIO()
    from comfy_api.latest import Types

    video.save_to(buf, format=Types.VideoContainer.MP4, codec=Types.VideoCodec.H264)
    return buf.getvalue()


def output_types(class_type: str) -> list:
    """RETURN_TYPES of an installed node class (a list of options for a combo output);
    KeyError when no such class is installed here."""
    import nodes

    return list(nodes.NODE_CLASS_MAPPINGS[class_type].RETURN_TYPES)
