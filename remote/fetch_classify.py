"""The fetch's classify stage: what each output of a task is to become, and its size cap.

The kind here comes from RunningHub's `fileType` (or the URL's extension), which only
decides how a file is downloaded (a video to a file on disk, the rest into memory) and
its size cap: the decode stage checks each file's real type from its bytes. Kinds the pack
does not turn into values (a 3D model, a zip) are listed and not downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..client.errors import DownloadError
from ..client.records import TaskOutput

IMAGE_TYPES = {"png", "jpg", "jpeg", "webp", "gif", "bmp"}
VIDEO_TYPES = {"mp4", "webm", "mov", "mkv", "avi"}
AUDIO_TYPES = {"wav", "mp3", "flac", "ogg", "m4a", "aac"}
TEXT_TYPES = {"txt", "json", "text"}

MAX_BYTES = {"image": 256 * 1024 ** 2, "video": 4 * 1024 ** 3, "audio": 1024 ** 3, "text": 16 * 1024 ** 2}


class OutputDecodeError(DownloadError):
    """An output cannot become a value: it has no URL, is not what it claims to be, or
    cannot be decoded. The message names the task."""


@dataclass(frozen=True)
class OutputFile:
    """One output to fetch."""

    output: TaskOutput
    kind: str  # image | video | audio | text

    @property
    def label(self) -> str:
        return f"output {self.output.file_type or 'file'} of remote node {self.output.node_id or '?'}"

    @property
    def max_bytes(self) -> int:
        return MAX_BYTES[self.kind]


@dataclass
class Classified:
    files: list[OutputFile] = field(default_factory=list)  # in the task's order
    listing: list[str] = field(default_factory=list)  # every output: "node id<TAB>file type<TAB>URL"
    skipped: list[str] = field(default_factory=list)  # URLs of the outputs not fetched


def kind_of(output: TaskOutput) -> str:
    """image, video, audio, text, or other (not turned into a value)."""
    if output.text is not None:
        return "text"
    file_type = output.file_type.lower()
    for kind, types in (("image", IMAGE_TYPES), ("video", VIDEO_TYPES), ("audio", AUDIO_TYPES),
                        ("text", TEXT_TYPES)):
        if file_type in types:
            return kind
    return "other"


def classify(task_id: str, outputs: list[TaskOutput]) -> Classified:
    """The files to fetch, in order; raises OutputDecodeError for one without a URL (nothing is fetched then)."""
    found = Classified()
    for out in outputs:
        found.listing.append(f"{out.node_id or '?'}\t{out.file_type or '?'}\t{out.url or '(inline text)'}")
        kind = kind_of(out)
        if kind == "other":
            found.skipped.append(out.url or "")
            continue
        file = OutputFile(out, kind)
        if out.text is None and not out.url:
            raise OutputDecodeError(f"RunningHub listed an {file.label} without a URL (task {task_id}).",
                                    task_id=task_id)
        found.files.append(file)
    return found
