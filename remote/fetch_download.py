"""The fetch's download stage: every output file at once, in parallel, streamed, size-capped.

A video is streamed to a temp file (up to 4 GiB: it never passes through memory);
everything else into memory (the decode stage and the node's preview need the bytes).
Inline text outputs need no download. `download_all` hands each file to `arrived`, in the
calling thread, as soon as its download finishes, so the decode stage can begin on it
while the others are still on their way. Each download carries the run's stop
(contextvars). At the first failure (of a download, or of `arrived`) the downloads not
started are cancelled, the running ones end, and the error is raised: `remove_files` then
removes the video files, whole or partial.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import BinaryIO, Callable

from ..client.api import RunningHubClient
from ..client.downloads import download_to
from ..client.records import TaskOutput
from .fetch_classify import OutputFile

log = logging.getLogger("runninghub_bridge.remote")


@dataclass
class Downloaded:
    """An output file and what its download gave: `data` in memory, or `path` for a video."""

    file: OutputFile
    data: bytes = b""
    path: str | None = None  # a video's temp file, set when its download starts

    @property
    def output(self) -> TaskOutput:
        return self.file.output

    @property
    def kind(self) -> str:
        return self.file.kind

    @property
    def label(self) -> str:
        return self.file.label


def download_all(client: RunningHubClient, task_id: str, items: list[Downloaded], *,
                 new_temp_file: Callable[[str], str], arrived: Callable[[Downloaded], None],
                 parallel: int = 8) -> None:
    """Download every item (at most `parallel` at once), calling `arrived` with each as it finishes."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="rh-download") as pool:
        jobs = [pool.submit(contextvars.copy_context().run, _download, client, task_id, it, new_temp_file)
                for it in items]  # each carries the run's stop
        try:
            for job in as_completed(jobs):
                arrived(job.result())
        except BaseException:
            for job in jobs:
                job.cancel()  # the ones not started; the pool waits for the others
            raise


def remove_files(items: list[Downloaded]) -> None:
    """The video files of a failed fetch, whole or partial: of no use, and up to 4 GiB each."""
    for it in items:
        if it.path is not None:
            try:
                os.remove(it.path)
            except FileNotFoundError:
                pass  # its download had not created it yet
            except OSError as exc:
                log.warning("could not remove %s: %s", it.path, exc)


def _download(client: RunningHubClient, task_id: str, item: Downloaded,
              new_temp_file: Callable[[str], str]) -> Downloaded:
    out = item.output
    if out.text is not None:
        item.data = out.text.encode("utf-8")
    elif item.kind == "video":
        item.path = new_temp_file("." + (out.file_type or "mp4"))
        with open(item.path, "wb") as sink:
            _stream(client, task_id, item, sink)
    else:
        sink = io.BytesIO()
        _stream(client, task_id, item, sink)
        item.data = sink.getvalue()
    return item


def _stream(client: RunningHubClient, task_id: str, item: Downloaded, sink: BinaryIO) -> None:
    download_to(client.transport.session, item.output.url, sink, site=client.site, max_bytes=item.file.max_bytes,
                task_id=task_id, label=item.label)
