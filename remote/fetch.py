"""Fetch a finished task's outputs and turn them into ComfyUI values.

Downloads run in parallel and are streamed with size caps; every file's real type comes
from its bytes, not from the URL or RunningHub's fileType. Videos are streamed to temp
files. Images are decoded straight into their slots of the one output batch, by at most
as many workers as there are cores, as their downloads finish: on a real link (where the
downloads take longest) decoding overlaps them. On a link faster than `FAST_LINK` (a LAN,
loopback) the downloads need the CPU themselves and are soon done, so decoding waits for
them (15% faster on 2 cores by bench/fetch_decode.py). The MASK of opaque images is never
written (see `_ImageBatch`), so a fetch peaks near the size of the IMAGE it returns plus
the downloaded files (kept for the node's preview). When the images differ in size (or
would exceed the batch cap), every download is awaited and `decode_images` applies the
node's size policy instead. An output that cannot be downloaded or decoded raises an
error naming the task and the remote node: nothing is ever replaced by a placeholder, and
the video files of a fetch that failed (or was stopped) are removed at once.
Files of kinds the pack does not turn into values (a 3D model, a zip) are listed in
`listing` and left alone.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable

from ..client.api import RunningHubClient
from ..client.downloads import download_to
from ..client import task_socket
from ..client.errors import DownloadError, WaitInterrupted
from ..client.polling import PollPolicy, TaskProgress, wait_for_task
from ..client.records import TaskOutput, TaskResult
from ..client.stop import stop_when

log = logging.getLogger("runninghub_bridge.remote")

IMAGE_TYPES = {"png", "jpg", "jpeg", "webp", "gif", "bmp"}
VIDEO_TYPES = {"mp4", "webm", "mov", "mkv", "avi"}
AUDIO_TYPES = {"wav", "mp3", "flac", "ogg", "m4a", "aac"}
TEXT_TYPES = {"txt", "json", "text"}

MAX_BYTES = {"image": 256 * 1024 ** 2, "video": 4 * 1024 ** 3, "audio": 1024 ** 3, "text": 16 * 1024 ** 2}


class OutputDecodeError(DownloadError):
    """A downloaded output is not what it claims to be, or cannot be decoded."""


@dataclass
class Downloaded:
    output: TaskOutput
    kind: str  # image | video | audio | text | other
    data: bytes = b""
    path: str | None = None  # videos are streamed to a file

    @property
    def label(self) -> str:
        return f"output {self.output.file_type or 'file'} of remote node {self.output.node_id or '?'}"


@dataclass
class FetchedOutputs:
    task_id: str
    images: object | None = None  # media.image_decode.DecodedImages
    image_files: list[Downloaded] = field(default_factory=list)
    videos: list[Downloaded] = field(default_factory=list)
    audio: dict | None = None
    audio_file: Downloaded | None = None  # the file `audio` was decoded from (for the preview)
    texts: list[str] = field(default_factory=list)
    listing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.images is not None:
            b, h, w = self.images.image.shape[:3]
            parts.append(f"{b} image(s) {w}x{h}")
        if self.videos:
            parts.append(f"{len(self.videos)} video(s)")
        if self.audio is not None:
            parts.append("audio")
        if self.texts:
            parts.append(f"{len(self.texts)} text(s)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} other file(s) listed in urls")
        return f"task {self.task_id}: " + (", ".join(parts) or "no outputs")


def kind_of(output: TaskOutput) -> str:
    t = output.file_type.lower()
    if output.text is not None:
        return "text"
    for kind, types in (("image", IMAGE_TYPES), ("video", VIDEO_TYPES), ("audio", AUDIO_TYPES),
                        ("text", TEXT_TYPES)):
        if t in types:
            return kind
    return "other"


def _download(client: RunningHubClient, item: Downloaded, task_id: str,
              new_temp_file: Callable[[str], str]) -> Downloaded:
    out = item.output
    if out.text is not None:
        item.data = out.text.encode("utf-8")
        return item
    if not out.url:
        raise OutputDecodeError(f"RunningHub listed an {item.label} without a URL (task {task_id}).",
                                task_id=task_id)
    cap = MAX_BYTES[item.kind]
    if item.kind == "video":
        item.path = new_temp_file("." + (out.file_type or "mp4"))
        with open(item.path, "wb") as sink:
            download_to(client.transport.session, out.url, sink, site=client.site, max_bytes=cap,
                        task_id=task_id, label=item.label)
        return item
    sink = io.BytesIO()
    download_to(client.transport.session, out.url, sink, site=client.site, max_bytes=cap, task_id=task_id,
                label=item.label)
    item.data = sink.getvalue()
    return item




FAST_LINK = 100e6  # bytes per second


class _ImageBatch:
    """Decodes downloaded images into one batch as they arrive, while they share one size.

    `arrived` is called from one thread (the one collecting downloads); decoding runs on
    `workers` threads. `ok` turns false at the first image of another size (or when the
    batch would be over the cap): the caller then decodes everything the general way.

    The MASK batch starts as zeros from `calloc` (numpy), whose pages cost no memory until
    written: each image's mask is decoded into a per-worker scratch slot and copied in
    only when it has a masked pixel, so the usual all-opaque outputs never touch it."""

    def __init__(self, count: int, policy: str, workers: int):
        from ..media import image_decode

        self._decode = image_decode
        self.count = count
        self.policy = policy
        self.batch = None
        self.size: tuple[int, int] | None = None
        self.ok = True
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rh-decode")
        self._jobs: list[Future] = []
        self._pending: list[tuple[int, Downloaded]] = []
        self._scratch = threading.local()

    def arrived(self, slot: int, item: Downloaded, *, defer: bool = False) -> None:
        """One image is downloaded; `defer` keeps its decoding until `start` (a fast link)."""
        if not self.ok:
            return
        info = self._decode.probe_image(item.data, label=item.label)
        if self.batch is None:
            if self.count * info.width * info.height > self._decode.DEFAULT_MAX_BATCH_PIXELS:
                self.ok = False  # decode_images raises the clear error
                return
            import numpy as np
            import torch

            self.size = (info.width, info.height)
            self.batch = self._decode.DecodedImages(
                torch.empty((self.count, info.height, info.width, 3), dtype=torch.float32),
                torch.from_numpy(np.zeros((self.count, info.height, info.width), dtype=np.float32)))
        if (info.width, info.height) != self.size:
            self.ok = False
            return
        self._pending.append((slot, item))
        if not defer:
            self.start()

    def start(self) -> None:
        """Decode everything that arrived so far."""
        while self._pending:
            self._jobs.append(self._pool.submit(self._one, *self._pending.pop(0)))

    def _one(self, slot: int, item: Downloaded) -> None:
        scratch = getattr(self._scratch, "mask", None)
        if scratch is None:
            scratch = self._scratch.mask = self.batch.mask[0].clone()
        self._decode.decode_image_into(item.data, self.batch.image[slot], scratch, label=item.label,
                                       policy=self.policy)
        if bool(scratch.any()):
            self.batch.mask[slot].copy_(scratch)

    def finish(self):
        """The batch, or None if the images have to be decoded the general way."""
        if self.ok:
            self.start()
        try:
            for job in self._jobs:
                job.result()  # the first decoding error is raised
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return self.batch if self.ok and len(self._jobs) == self.count else None

    def abandon(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def fetch_outputs(client: RunningHubClient, task_id: str, result: TaskResult | None, *,
                  new_temp_file: Callable[[str], str], size_policy: str = "pad",
                  poll_policy: PollPolicy | None = None, should_stop: Callable[[], bool] | None = None,
                  on_progress: Callable[[TaskProgress], None] | None = None, parallel: int = 8) -> FetchedOutputs:
    """`result` None means re-attach: wait for the task (no new run), then fetch.
    `should_stop` stops the wait and the downloads (WaitInterrupted)."""
    with stop_when(should_stop):
        if result is None:
            result = wait_for_task(client, task_id, policy=poll_policy, on_progress=on_progress,
                                   open_socket=task_socket.opener(client.site, label=f"task {task_id}"))
        fetched = FetchedOutputs(task_id=task_id)
        items = []
        for out in result.outputs:
            kind = kind_of(out)
            fetched.listing.append(f"{out.node_id or '?'}\t{out.file_type or '?'}\t{out.url or '(inline text)'}")
            if kind == "other":
                fetched.skipped.append(out.url or "")
                continue
            items.append(Downloaded(out, kind))
        try:
            return _download_and_decode(client, task_id, fetched, items, new_temp_file=new_temp_file,
                                        size_policy=size_policy, parallel=parallel)
        except BaseException:
            _remove_files(items)
            raise


def _remove_files(items: list[Downloaded]) -> None:
    """Video files of a failed fetch, whole or partial: of no use, and up to 4 GiB each."""
    for it in items:
        if it.path is not None:
            try:
                os.remove(it.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", it.path, exc)


def _download_and_decode(client: RunningHubClient, task_id: str, fetched: FetchedOutputs, items: list[Downloaded],
                         *, new_temp_file: Callable[[str], str], size_policy: str, parallel: int) -> FetchedOutputs:
    from ..media.audio import decode_audio
    from ..media.image_decode import decode_images
    from ..media.video import probe_video


    images = [it for it in items if it.kind == "image"]
    slot_of = {id(it): n for n, it in enumerate(images)}
    stream = _ImageBatch(len(images), size_policy, max(1, min(4, os.cpu_count() or 2, len(images)))) \
        if images else None
    decoded = None
    try:
        if items:
            with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="rh-download") as pool:
                jobs = [pool.submit(contextvars.copy_context().run, _download, client, it, task_id, new_temp_file)
                        for it in items]  # each carries the run's stop
                began, received = time.monotonic(), 0
                try:
                    for job in as_completed(jobs):
                        it = job.result()
                        received += len(it.data)
                        if it.kind == "image":
                            fast = received / max(1e-3, time.monotonic() - began) > FAST_LINK
                            stream.arrived(slot_of[id(it)], it, defer=fast)
                except BaseException:
                    for job in jobs:
                        job.cancel()  # the ones not started; the pool waits for the others
                    raise
        if stream is not None:
            decoded, stream = stream.finish(), None
    except (DownloadError, WaitInterrupted):  # a stop is no decoding error
        raise
    except Exception as exc:
        if stream is None or not images:
            raise
        raise OutputDecodeError(f"RunningHub task {task_id}: {exc}", task_id=task_id) from exc
    finally:
        if stream is not None:
            stream.abandon()

    for it in items:
        try:
            if it.kind == "video":
                with open(it.path, "rb") as fh:
                    probe_video(fh.read(), label=it.label)
                fetched.videos.append(it)
            elif it.kind == "audio":
                if fetched.audio is None:
                    fetched.audio, fetched.audio_file = decode_audio(it.data, label=it.label), it
            elif it.kind == "text":
                fetched.texts.append(it.data.decode("utf-8", errors="replace"))
        except DownloadError:
            raise
        except Exception as exc:
            raise OutputDecodeError(f"RunningHub task {task_id}: the {it.label} could not be decoded ({exc}). "
                                    f"URL: {it.output.url}", task_id=task_id) from exc
    if images:
        if decoded is None:  # sizes differ (or over the cap): every file, with the size policy
            try:
                decoded = decode_images([it.data for it in images], labels=[it.label for it in images],
                                        policy=size_policy, workers=min(4, len(images)))
            except Exception as exc:
                raise OutputDecodeError(f"RunningHub task {task_id}: {exc}", task_id=task_id) from exc
        fetched.images = decoded
        fetched.image_files = images
    log.info("fetched %s", fetched.summary())
    return fetched
