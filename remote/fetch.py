"""Fetch a task's outputs as ComfyUI values: a pipeline of four stages.

1. wait      for the task to finish, when re-attaching (`result` None): client/polling
2. classify  what each output is to become, its size cap: remote/fetch_classify.py
3. download  every file at once, in parallel, streamed, size-capped: remote/fetch_download.py
4. decode    into IMAGE + MASK, VIDEO files, AUDIO, text: remote/fetch_decode.py
             (images through media/image_batch.py, the pack's one image decode path)

Stages 3 and 4 overlap for images: each image's header is read as soon as its download
finishes. On a real link (where the downloads take longest) its pixels are decoded then
too, by at most as many threads as there are cores, so decoding overlaps the downloads. On
a link faster than `FAST_LINK` (a LAN, loopback) the downloads need the CPU themselves and
are soon done, so decoding waits for them (15% faster on 2 cores by bench/fetch_decode.py).
A fetch peaks near the size of the IMAGE it returns plus the downloaded files (kept for the
node's preview); videos stay on disk. An output that cannot be downloaded or decoded
raises an error naming the task and the remote node: nothing is ever replaced by a
placeholder, and the video files of a fetch that failed (or was stopped) are removed at once.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ..client import task_socket
from ..client.api import RunningHubClient
from ..client.polling import PollPolicy, TaskProgress, wait_for_task
from ..client.records import TaskResult
from ..client.stop import stop_when
from .fetch_classify import OutputDecodeError, classify, kind_of
from .fetch_decode import FetchedOutputs, OutputDecoder
from .fetch_download import Downloaded, download_all, remove_files

__all__ = ["FAST_LINK", "Downloaded", "FetchedOutputs", "OutputDecodeError", "fetch_outputs", "kind_of"]

log = logging.getLogger("runninghub_bridge.remote")

FAST_LINK = 100e6  # bytes per second


def fetch_outputs(client: RunningHubClient, task_id: str, result: TaskResult | None, *,
                  new_temp_file: Callable[[str], str], size_policy: str = "pad",
                  poll_policy: PollPolicy | None = None, should_stop: Callable[[], bool] | None = None,
                  on_progress: Callable[[TaskProgress], None] | None = None, parallel: int = 8) -> FetchedOutputs:
    """`result` None means re-attach: wait for the task (no new run), then fetch.
    `should_stop` stops the wait and the downloads (WaitInterrupted); a task waited for is
    left running (this fetch did not start it)."""
    with stop_when(should_stop):
        if result is None:
            result = wait_for_task(client, task_id, policy=poll_policy, on_progress=on_progress,
                                   open_socket=task_socket.opener(client.site, label=f"task {task_id}"),
                                   cancel_on_stop=False)  # a task of an earlier run, the website's, ...
        classified = classify(task_id, result.outputs)
        items = [Downloaded(f) for f in classified.files]
        try:
            with OutputDecoder(task_id, classified, items, size_policy=size_policy) as decoder:
                link = _LinkSpeed()
                download_all(client, task_id, items, new_temp_file=new_temp_file, parallel=parallel,
                             arrived=lambda it: decoder.arrived(it, decode_now=not link.fast_after(it)))
                fetched = decoder.finish()
        except BaseException:
            remove_files(items)
            raise
    log.info("fetched %s", fetched.summary())
    return fetched


class _LinkSpeed:
    """Whether the downloads of one fetch arrive faster than FAST_LINK so far."""

    def __init__(self):
        self._began = time.monotonic()
        self._received = 0

    def fast_after(self, item: Downloaded) -> bool:
        self._received += len(item.data)
        return self._received / max(1e-3, time.monotonic() - self._began) > FAST_LINK
