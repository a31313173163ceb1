"""Run one group of the user's graph on RunningHub's native ComfyUI endpoint (RH Remote
Group): inputs → remote prompt → check → upload → submit and wait → outputs.

1. `encode_inputs`: IMAGE inputs become PNG files (media/, exact for 8-bit pixels), MASK
   inputs PNG files the remote Load Image (as Mask) reads back exactly (grey read as red,
   or the alpha of Load Image's own masks); every file is named by its content hash.
   STRING, INT, FLOAT, BOOLEAN and combo values are written into the prompt.
2. `group_prompt.remote_prompt` adds the load and output nodes; `remote_check` compares it with
   the remote `/object_info` (cached by the native client): anything missing is one error,
   before anything is uploaded or billed.
3. Files go up through the remote `/upload/image` (`start_uploads`: while run_prompt
   records the run); the prompt goes through `native_run.run_prompt` (ledger, progress,
   cancel, re-attach), fingerprinted by site, account and the remote prompt with the files'
   content-hash names, and sent once its files are up.
4. `collect_outputs`: each group output is read from the history of its output node:
   Save Image files downloaded and decoded (media/), a mask from their red channel, text
   from Preview as Text. `Prefetch` starts those downloads early, when the remote's socket
   says an output node ran (its `executed` message names the files), so they overlap the
   end of the remote run and the history read; a prefetched file is used only when the
   history names the very same file.

No ComfyUI imports; the node passes in the native client and its callbacks.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from ..client.errors import RunningHubError
from ..media.image_batch import decode_images
from ..media.image_encode import encode_png, encode_png_batch
from ..media.pixels import to_uint8
from .group_prompt import UPLOADED_INPUTS, GroupError, GroupSpec, RemotePrompt, remote_prompt
from .remote_check import find_missing, missing_error

log = logging.getLogger("runninghub_bridge.remote")

_PY_TYPES: dict[str, tuple[type, ...]] = {"STRING": (str,), "INT": (int,), "FLOAT": (float, int),
                                          "BOOLEAN": (bool,), "COMBO": (str, int, float)}


@dataclass(frozen=True)
class Upload:
    name: str  # rh-<sha256>.png: the content decides the name
    data: bytes


@dataclass(frozen=True)
class PreparedGroup:
    """A group's remote prompt before its files are uploaded (named by content hash)."""

    spec: GroupSpec
    inline: dict[str, Any]
    uploads: dict[str, list[Upload]]
    channels: dict[str, str]
    planned: RemotePrompt

    def with_names(self, names: Mapping[str, str]) -> RemotePrompt:
        """The remote prompt with each file named as the remote answered its upload."""
        files = {port: [names.get(u.name, u.name) for u in items] for port, items in self.uploads.items()}
        return remote_prompt(self.spec, self.inline, files, self.channels)


def file_name(data: bytes) -> str:
    return f"rh-{hashlib.sha256(data).hexdigest()}.png"


def encode_inputs(spec: GroupSpec, values: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, list[Upload]], dict[str, str]]:
    """(inlined values, files to upload, the channel each mask is read from) of the group's
    inputs, from the node's in_k values."""
    inline: dict[str, Any] = {}
    uploads: dict[str, list[Upload]] = {}
    channels: dict[str, str] = {}
    for port in spec.inputs:
        value = values.get(port.name)
        where = f"RH Remote Group \"{spec.title}\", {port.name} (from {port.source})"
        if value is None:
            raise GroupError(f"{where}: nothing is connected; convert the graph again from the front end.")
        if port.type == "IMAGE":
            if not isinstance(value, torch.Tensor):
                raise GroupError(f"{where}: expected an IMAGE, got {type(value).__name__}.")
            blobs = encode_png_batch(value)
        elif port.type == "MASK":
            blobs, channels[port.name] = _mask_pngs(value, where)
        else:
            if isinstance(value, bool) and port.type != "BOOLEAN" or not isinstance(value, _PY_TYPES[port.type]):
                raise GroupError(f"{where}: expected {port.type}, got {type(value).__name__} {str(value)[:40]!r}.")
            inline[port.name] = value
            continue
        uploads[port.name] = [Upload(file_name(b), b) for b in blobs]
    return inline, uploads, channels


def _mask_pngs(mask: Any, where: str) -> tuple[list[bytes], str]:
    """PNG files of a mask and the channel the remote reads it from. Two 8-bit forms exist,
    and ComfyUI makes both: k/255 (e.g. Convert Image to Mask) and 1 - k/255 (Load Image's
    mask from alpha), which differ in float32. The form that gives back exactly the same
    values is chosen: `red` (the mask in red, green and blue; Load Image (as Mask), channel
    red) or, for a single mask, `alpha` (the PNG's alpha; channel alpha computes 1 - alpha as
    Load Image does)."""
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3) or 0 in mask.shape:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise GroupError(f"{where}: expected a MASK [batch, height, width], got {shape}.")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    values = mask.detach().to("cpu", torch.float32)
    red = to_uint8(values)
    if mask.shape[0] == 1 and not torch.equal(red.float() / 255.0, values):
        alpha = to_uint8(1.0 - values)
        if torch.equal(1.0 - alpha.float() / 255.0, values):
            zero = torch.zeros_like(alpha[0])
            return [encode_png(torch.stack((zero, zero, zero, alpha[0]), dim=-1).numpy())], "alpha"
    # RGB and RGBA only: ComfyUI 0.33's Load Image decodes through PyAV, which refuses gray + alpha PNGs
    return [encode_png(item.unsqueeze(-1).expand(-1, -1, 3).contiguous().numpy()) for item in red], "red"


def prepare(spec: GroupSpec, values: Mapping[str, Any]) -> PreparedGroup:
    inline, uploads, channels = encode_inputs(spec, values)
    planned = remote_prompt(spec, inline, {port: [u.name for u in items] for port, items in uploads.items()},
                            channels)
    return PreparedGroup(spec, inline, uploads, channels, planned)


def check_remote(prepared: PreparedGroup, object_info: Mapping[str, Any], *, host: str,
                 site: str | None = None) -> None:
    """MissingOnRemoteError naming every node class and combo value the remote lacks, and an
    error when the remote prompt would have no output at all."""
    missing = find_missing(prepared.planned.prompt, object_info, skip=prepared.planned.uploaded_fields)
    if missing:
        raise missing_error(missing, what=f"Group \"{prepared.spec.title}\"", host=host, site=site)
    if not prepared.spec.outputs and not any(
            (object_info.get(n["class_type"]) or {}).get("output_node") for n in prepared.planned.prompt.values()):
        raise GroupError(f"Group \"{prepared.spec.title}\" has no output: nothing leaves it and no node in it saves "
                         "or shows anything, so RunningHub would run nothing. Wire a value out of the group.")


def precheck(spec: GroupSpec, values: Mapping[str, Any], object_info: Mapping[str, Any], *, host: str) -> bool:
    """Whether the group will pass `check_remote`, judged before its inputs are encoded
    (a placeholder file per batch item, a mask read from red; values of the wrong type
    fail): the caller may then open the prompt's socket while the inputs encode. Only a
    hint: `check_remote` on the prepared group still decides. Never raises."""
    try:
        inline: dict[str, Any] = {}
        files: dict[str, list[str]] = {}
        for port in spec.inputs:
            value = values.get(port.name)
            if port.type in UPLOADED_INPUTS:
                if not isinstance(value, torch.Tensor):
                    return False
                batch = value.shape[0] if value.ndim == (4 if port.type == "IMAGE" else 3) else 1
                files[port.name] = [f"rh-precheck-{i}.png" for i in range(max(int(batch), 1))]
            elif value is None or isinstance(value, bool) and port.type != "BOOLEAN" \
                    or not isinstance(value, _PY_TYPES[port.type]):
                return False
            else:
                inline[port.name] = value
        check_remote(PreparedGroup(spec, inline, {}, {}, remote_prompt(spec, inline, files)), object_info, host=host)
        return True
    except Exception:  # noqa: BLE001 - a hint only: the real check reports
        return False


def upload_all(upload: Callable[[bytes, str], str], prepared: PreparedGroup, *, parallel: int = 4) -> dict[str, str]:
    """Each distinct file uploaded once, up to `parallel` at a time (each in a copy of the
    caller's context, so the run's stop reaches it); {content-hash name: the remote's name}."""
    files = {item.name: item.data for items in prepared.uploads.values() for item in items}
    if len(files) <= 1 or parallel <= 1:
        return {name: upload(data, name) for name, data in files.items()}
    with ThreadPoolExecutor(max_workers=min(parallel, len(files)), thread_name_prefix="rh-group-upload") as pool:
        futures = {name: pool.submit(contextvars.copy_context().run, upload, data, name)
                   for name, data in files.items()}
        return {name: future.result() for name, future in futures.items()}


_UPLOADER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rh-group-upload")


def start_uploads(upload: Callable[[bytes, str], str], prepared: PreparedGroup) -> Future:
    """`upload_all` in the background (in a copy of the caller's context: the run's stop
    reaches it), so the run can be recorded while the files go up; its result is the names."""
    return _UPLOADER.submit(contextvars.copy_context().run, upload_all, upload, prepared)


def fingerprint_parts(site: str, account: str, prepared: PreparedGroup) -> dict[str, Any]:
    """What decides "the same run": site, account and the remote prompt with every uploaded
    file by content hash (the remote may name an upload otherwise). Node titles (`_meta`)
    are left out: renaming a node runs nothing again."""
    nodes = {node_id: {k: v for k, v in node.items() if k != "_meta"}
             for node_id, node in prepared.planned.prompt.items()}
    return {"kind": "native-group", "site": site, "account": account, "prompt": nodes}


def _image_refs(output: Any) -> list[dict]:
    items = output.get("images") if isinstance(output, Mapping) else None
    return [r for r in items or [] if isinstance(r, dict) and r.get("filename")]


def _refs_key(refs: list[dict]) -> tuple:
    return tuple((str(r.get("filename")), str(r.get("subfolder") or ""), str(r.get("type") or "output"))
                 for r in refs)


def _labels(where: str, count: int) -> list[str]:
    return [f"{where} file {i + 1}" for i in range(count)]


class Prefetch:
    """The group's image outputs, downloaded and decoded as soon as the remote socket's
    `executed` message of their output node names the files (`executed`, called from the
    socket's thread), one node at a time in a worker thread that carries the run's stop.
    `take` hands a result over only for the very files the history names (the history
    decides; otherwise, or when the prefetch failed, the caller downloads as usual).
    `close()` drops what was not taken."""

    def __init__(self, spec: GroupSpec, output_nodes: Mapping[str, str] | None, download: Callable[[dict], bytes]):
        self._types = {port.name: port.type for port in spec.outputs}
        self._wanted: dict[str, str] = {}
        if output_nodes is not None:
            self.expect(output_nodes)
        self._download = download
        self._context = contextvars.copy_context()  # the run's stop reaches the downloads
        self._jobs: dict[str, tuple[tuple, Future]] = {}
        self._lock = threading.Lock()
        # its thread started now, while the inputs encode, not at the first `executed` (~1 ms)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rh-group-prefetch")
        self._pool.submit(int)
        self._closed = False

    def expect(self, output_nodes: Mapping[str, str]) -> None:
        """The remote prompt's output nodes (`RemotePrompt.output_nodes`): only theirs are fetched."""
        self._wanted = {node_id: port for port, node_id in output_nodes.items()
                        if self._types.get(port) in ("IMAGE", "MASK")}

    def executed(self, node_id: str, output: Mapping[str, Any]) -> None:
        if node_id not in self._wanted:
            return
        refs = _image_refs(output)
        if not refs:
            return
        with self._lock:
            if self._closed or node_id in self._jobs:
                return
            job = self._pool.submit(self._context.copy().run, self._fetch, refs)
            self._jobs[node_id] = (_refs_key(refs), job)

    def _fetch(self, refs: list[dict]):
        blobs = [self._download(ref) for ref in refs]
        return decode_images(blobs, labels=_labels("prefetched output", len(blobs)), policy="pad")

    def take(self, node_id: str, refs: list[dict]):
        """The decoded files of `node_id` when they were prefetched and are `refs`; else None."""
        with self._lock:
            job = self._jobs.pop(node_id, None)
        if job is None or job[0] != _refs_key(refs):
            return None
        try:
            return job[1].result()
        except Exception as exc:  # noqa: BLE001 - downloaded again the usual way, which reports it
            log.info("prefetch of remote node %s's outputs failed (%s); downloading them again", node_id,
                     type(exc).__name__)
            return None

    def close(self) -> None:
        with self._lock:
            self._closed, self._jobs = True, {}
        self._pool.shutdown(wait=False, cancel_futures=True)


def collect_outputs(spec: GroupSpec, output_nodes: Mapping[str, str], history_outputs: Mapping[str, Any],
                    download: Callable[[dict], bytes], prefetch: Prefetch | None = None) -> list[Any]:
    """The group's outputs (out_0, out_1, ...) from the remote history's outputs (images
    from `prefetch` when it holds the same files)."""
    values: list[Any] = []
    for port in spec.outputs:
        node_id = output_nodes[port.name]
        found = history_outputs.get(node_id) or {}
        where = f"Group \"{spec.title}\" output {port.name} ({port.label}, remote node {node_id})"
        if port.type == "STRING":
            texts = found.get("text")
            if not isinstance(texts, list) or not texts:
                raise RunningHubError(f"{where}: the remote returned no text.")
            values.append(texts[0] if len(texts) == 1 else "\n".join(str(t) for t in texts))
            continue
        refs = _image_refs(found)
        if not refs:
            raise RunningHubError(f"{where}: the remote returned no image.")
        decoded = prefetch.take(node_id, refs) if prefetch is not None else None
        if decoded is None:
            blobs = [download(ref) for ref in refs]
            decoded = decode_images(blobs, labels=_labels(where, len(blobs)), policy="pad")
        values.append(decoded.image[..., 0].contiguous() if port.type == "MASK" else decoded.image)
    return values
