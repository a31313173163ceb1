"""The fetch's decode stage: downloaded outputs -> ComfyUI values.

- Images: one IMAGE + MASK batch by `media.image_batch`, the pack's one image decode path.
  Each image is handed over as its download finishes (`arrived`): its header is read at
  once and its pixels are decoded at once or by `finish`, as the caller chooses.
- Videos: each is probed from its file on disk (headers and one frame: it plays) and
  passed on as that file, for a VIDEO value that decodes frames only when used. The file
  is never read into memory.
- The first audio is decoded into AUDIO; text outputs are read as UTF-8.
An output that cannot be decoded raises OutputDecodeError naming the task (and the
output): nothing is ever replaced by a placeholder.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..client.errors import RunningHubError
from ..media.audio import decode_audio
from ..media.image_batch import ImageBatch
from ..media.image_decode import DecodedImages
from ..media.video import probe_video_file
from .fetch_classify import Classified, OutputDecodeError
from .fetch_download import Downloaded


@dataclass
class FetchedOutputs:
    task_id: str
    images: DecodedImages | None = None
    image_files: list[Downloaded] = field(default_factory=list)  # the files `images` came from (for the preview)
    videos: list[Downloaded] = field(default_factory=list)  # each with `path`, its file
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


class OutputDecoder:
    """Decodes the downloads of one fetch. Call `arrived` for each download as it
    finishes, then `finish`; use it as a context manager (leaving it stops its threads)."""

    def __init__(self, task_id: str, classified: Classified, items: list[Downloaded], *, size_policy: str):
        self.task_id = task_id
        self._classified = classified
        self._items = items  # in the task's order
        self._images = [it for it in items if it.kind == "image"]
        self._slot_of = {id(it): slot for slot, it in enumerate(self._images)}
        self._batch = ImageBatch(len(self._images), policy=size_policy, workers=_decode_threads(len(self._images))) \
            if self._images else None

    def arrived(self, item: Downloaded, *, decode_now: bool) -> None:
        """`item` is downloaded: an image's header is read now, its pixels decoded now
        (`decode_now`, with every image kept so far) or by `finish`."""
        if item.kind != "image":
            return
        with _errors_name_the_task(self.task_id):
            self._batch.add(self._slot_of[id(item)], item.data, label=item.label)
            if decode_now:
                self._batch.start()

    def finish(self) -> FetchedOutputs:
        """Every output as a value; raises OutputDecodeError for the first that cannot be decoded."""
        fetched = FetchedOutputs(self.task_id, listing=self._classified.listing, skipped=self._classified.skipped)
        if self._batch is not None:
            with _errors_name_the_task(self.task_id):
                fetched.images = self._batch.finish()
            fetched.image_files = self._images
        for it in self._items:
            with _errors_name_the_task(self.task_id, it):
                _decode_one(fetched, it)
        return fetched

    def close(self) -> None:
        if self._batch is not None:
            self._batch.close()

    def __enter__(self) -> "OutputDecoder":
        return self

    def __exit__(self, *exc_info) -> bool:
        self.close()
        return False


def _decode_one(fetched: FetchedOutputs, it: Downloaded) -> None:
    """A video, audio or text output into `fetched` (images are the batch's)."""
    if it.kind == "video":
        probe_video_file(it.path, label=it.label)
        fetched.videos.append(it)
    elif it.kind == "audio" and fetched.audio is None:
        fetched.audio, fetched.audio_file = decode_audio(it.data, label=it.label), it
    elif it.kind == "text":
        fetched.texts.append(it.data.decode("utf-8", errors="replace"))


@contextmanager
def _errors_name_the_task(task_id: str, item: Downloaded | None = None) -> Iterator[None]:
    """Raise what goes wrong inside as OutputDecodeError naming the task (and `item`, its URL)."""
    try:
        yield
    except RunningHubError:
        raise  # it names the task already
    except Exception as exc:
        if item is None:  # the image batch: the message names the file
            message = f"RunningHub task {task_id}: {exc}"
        else:
            message = (f"RunningHub task {task_id}: the {item.label} could not be decoded ({exc}). "
                       f"URL: {item.output.url}")
        raise OutputDecodeError(message, task_id=task_id) from exc


def _decode_threads(images: int) -> int:
    """As many as cores, at most 4 (or one per image)."""
    return max(1, min(4, os.cpu_count() or 2, images))
