"""Where uploaded inputs and produced outputs live, and how output files are addressed."""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

# Upload extensions RunningHub accepts, and the `type` the v2 upload reports for them.
UPLOAD_KINDS = {
    "jpg": "image", "jpeg": "image", "png": "image", "webp": "image", "zip": "image",
    "mp3": "audio", "wav": "audio", "flac": "audio",
    "mp4": "video", "avi": "video", "mov": "video", "mkv": "video",
}

_SIGNATURES = (  # (offset, bytes, extension) of the accepted upload types
    (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"\xff\xd8\xff", "jpg"), (0, b"PK\x03\x04", "zip"),
    (0, b"fLaC", "flac"), (0, b"ID3", "mp3"), (0, b"\x1a\x45\xdf\xa3", "mkv"), (4, b"ftypqt", "mov"),
    (4, b"ftyp", "mp4"),
)
_RIFF = {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}


def sniff_extension(data: bytes) -> str | None:
    """The upload type of a file by its first bytes (for a file sent without a usable name)."""
    if data[:4] == b"RIFF":
        return _RIFF.get(data[8:12])
    for offset, magic, ext in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            return ext
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:  # an MPEG audio frame
        return "mp3"
    return None


_CONTENT_TYPES = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
    "gif": "image/gif", "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
    "mkv": "video/x-matroska", "avi": "video/x-msvideo", "wav": "audio/wav",
    "flac": "audio/flac", "mp3": "audio/mpeg", "ogg": "audio/ogg", "opus": "audio/ogg",
    "txt": "text/plain; charset=utf-8", "json": "application/json", "zip": "application/zip",
}


def content_type_for(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _CONTENT_TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass
class StoredFile:
    token: str
    path: Path
    name: str
    content_type: str
    created: float
    task_id: str | None
    expired: bool = False


class Storage:
    def __init__(self, data_dir: Path, extra_input_dirs: list[Path] = ()):
        self.data_dir = Path(data_dir)
        self.input_dir = self.data_dir / "input"
        self.output_dir = self.data_dir / "output"
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.extra_input_dirs = [Path(p) for p in extra_input_dirs]
        self._files: dict[str, StoredFile] = {}
        self._uploaders: dict[str, set[str]] = {}  # upload file name -> keys that uploaded it
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- inputs ---------------------------------------------------------------
    def save_upload(self, data: bytes, ext: str, key: str, folder: str = "api") -> str:
        """Stores an upload by `key`; returns the RunningHub file name `<folder>/<sha256>.<ext>`
        (`api/` from the v1 upload, `openapi/` from v2's); a ZIP (an image batch for a
        LoadImages-from-zip node's `upload` field) is named by its bare sha256, as the real
        service answers it."""
        digest = hashlib.sha256(data).hexdigest()
        name = digest if ext == "zip" else f"{folder}/{digest}.{ext}"
        with self._lock:
            self._uploaders.setdefault(name, set()).add(key)
        path = self.input_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_suffix(path.suffix + f".{secrets.token_hex(4)}.part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return name

    def resolve_input(self, name: str) -> Path | None:
        """An input file name as a loader node receives it (`api/<sha>.png`, `photo.png`,
        or ComfyUI's annotated `photo.png [input]`)."""
        if not isinstance(name, str) or not name:
            return None
        name = name.strip()
        if name.endswith(" [input]"):
            name = name[: -len(" [input]")]
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            return None
        for base in [self.input_dir, *self.extra_input_dirs]:
            candidate = base / rel
            if candidate.is_file():
                return candidate
        return None

    def hidden_from(self, name: str, key: str) -> bool:
        """Whether `name` is an upload that `key` never made (sample inputs are everyone's)."""
        name = name.strip().removesuffix(" [input]")
        with self._lock:
            return name in self._uploaders and key not in self._uploaders[name]

    def for_account(self, key: str, private_uploads: bool) -> "AccountFiles":
        return AccountFiles(self, key, private_uploads)

    # -- outputs --------------------------------------------------------------
    def next_output_name(self, prefix: str, ext: str) -> str:
        """ComfyUI-style `<prefix>_00001_.<ext>`, counting per prefix."""
        prefix = (prefix or "ComfyUI").replace("\\", "/").strip("/").rsplit("/", 1)[-1] or "ComfyUI"
        prefix = "".join(c if c.isalnum() or c in "-_." else "_" for c in prefix)
        with self._lock:
            n = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = n
        return f"{prefix}_{n:05d}_.{ext}"

    def output_path(self, task_id: str, name: str) -> Path:
        folder = self.output_dir / task_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def publish(self, path: Path, task_id: str | None = None, name: str | None = None) -> StoredFile:
        """Makes a file downloadable from the output host (see url_path)."""
        name = name or path.name
        entry = StoredFile(
            token=secrets.token_hex(16), path=Path(path), name=name,
            content_type=content_type_for(name), created=time.time(), task_id=task_id,
        )
        with self._lock:
            self._files[entry.token] = entry
        return entry

    def lookup(self, token: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(token)

    @staticmethod
    def url_path(entry: StoredFile) -> str:
        """The file's path on the output host, shaped like RunningHub's storage URLs."""
        return f"/rh-resource-models/{entry.token}/output/{quote(entry.name)}"


class AccountFiles:
    """The storage as one account's tasks see it. With uploads per account (a setting: the
    real service does not document it), an upload is visible only to the keys that made
    it; everything else is the shared storage."""

    def __init__(self, storage: Storage, key: str, private_uploads: bool):
        self._storage = storage
        self._key = key
        self._private = private_uploads

    def resolve_input(self, name: str) -> Path | None:
        if self._private and isinstance(name, str) and self._storage.hidden_from(name, self._key):
            return None
        return self._storage.resolve_input(name)

    def __getattr__(self, name: str):
        return getattr(self._storage, name)
