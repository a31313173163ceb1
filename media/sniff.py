"""What a file really is, from its first bytes.

Downloads are untrusted: a URL's extension or RunningHub's `fileType` says what a file
should be, the magic bytes say what it is. `sniff()` maps the bytes to a `FileKind`: the
short type name, a MIME type, RunningHub's upload `fileType` (None when RunningHub does not
accept that type as an upload) and the ComfyUI value it becomes as an output.

Accepted for upload (RunningHub docs): JPG/PNG/JPEG/WEBP as `image`, MP4/AVI/MOV/MKV as
`video`, MP3/WAV/FLAC as `audio`. GIF, WebM, Ogg, M4A, text and JSON are recognised as
outputs but have no upload fileType.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from .errors import UnsupportedMediaError

UploadType = Literal["image", "video", "audio"]
ComfyKind = Literal["IMAGE", "VIDEO", "AUDIO", "STRING"]

#: How many leading bytes `sniff` needs for a reliable answer.
SNIFF_BYTES = 64
#: How many leading bytes `sniff` ever looks at (a whole text file up to this size is checked as JSON).
SNIFF_WINDOW = 4096


@dataclass(frozen=True)
class FileKind:
    name: str  # "png", "jpeg", "mp4", ...: also the file extension to use
    mime: str
    upload_type: UploadType | None  # RunningHub upload fileType, None if not uploadable
    comfy_kind: ComfyKind  # the ComfyUI value an output of this kind becomes

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg"}.get(self.name, self.name)


KINDS: dict[str, FileKind] = {
    k.name: k
    for k in (
        FileKind("png", "image/png", "image", "IMAGE"),
        FileKind("jpeg", "image/jpeg", "image", "IMAGE"),
        FileKind("webp", "image/webp", "image", "IMAGE"),
        FileKind("gif", "image/gif", None, "IMAGE"),
        FileKind("mp4", "video/mp4", "video", "VIDEO"),
        FileKind("mov", "video/quicktime", "video", "VIDEO"),
        FileKind("mkv", "video/x-matroska", "video", "VIDEO"),
        FileKind("webm", "video/webm", None, "VIDEO"),
        FileKind("avi", "video/x-msvideo", "video", "VIDEO"),
        FileKind("wav", "audio/wav", "audio", "AUDIO"),
        FileKind("mp3", "audio/mpeg", "audio", "AUDIO"),
        FileKind("flac", "audio/flac", "audio", "AUDIO"),
        FileKind("ogg", "audio/ogg", None, "AUDIO"),
        FileKind("m4a", "audio/mp4", None, "AUDIO"),
        FileKind("txt", "text/plain", None, "STRING"),
        FileKind("json", "application/json", None, "STRING"),
    )
}

# ISO-BMFF brands that mean audio-only MPEG-4, and QuickTime's own brand.
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_QT_BRAND = b"qt  "
# Top-level atoms an old QuickTime file (no ftyp) may start with.
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


def sniff(data: bytes, *, label: str = "file") -> FileKind:
    """The kind of file `data` (or its first `SNIFF_BYTES` or more bytes) is.

    Raises UnsupportedMediaError naming `label` when the bytes match nothing accepted.
    """
    name = _sniff_name(bytes(data[:SNIFF_WINDOW]))
    if name is None:
        head = bytes(data[:16])
        raise UnsupportedMediaError(
            f"{label} is not a supported file type (first bytes {head!r}, {len(data)} bytes "
            f"given). Expected an image (PNG/JPEG/WEBP/GIF), video (MP4/MOV/MKV/WebM/AVI), "
            f"audio (WAV/MP3/FLAC/Ogg/M4A) or text/JSON file."
        )
    return KINDS[name]


def expect_kind(data: bytes, comfy_kinds: set[str] | frozenset[str], *, label: str) -> FileKind:
    """`sniff`, then require the file to become one of `comfy_kinds` (e.g. {"IMAGE"})."""
    kind = sniff(data, label=label)
    if kind.comfy_kind not in comfy_kinds:
        wanted = " or ".join(sorted(k.lower() for k in comfy_kinds))
        raise UnsupportedMediaError(
            f"{label} is a {kind.name} file ({kind.comfy_kind.lower()}), not {wanted}. "
            f"Connect it to an output of the matching type."
        )
    return kind


def upload_file_type(data: bytes, *, label: str = "file") -> UploadType:
    """RunningHub's upload `fileType` for `data`; raises if RunningHub does not accept it."""
    kind = sniff(data, label=label)
    if kind.upload_type is None:
        raise UnsupportedMediaError(
            f"{label} is a {kind.name} file, which RunningHub does not accept as an upload. "
            f"Accepted: PNG/JPEG/WEBP images, MP4/MOV/MKV/AVI videos, MP3/WAV/FLAC audio; "
            f"convert it to one of those first."
        )
    return kind.upload_type


def _sniff_name(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        # Theora in the first page means an Ogg video; ComfyUI has no loader for it.
        return None if b"\x80theora" in head[:512] else "ogg"
    if head.startswith(b"ID3") or _is_mp3_frame(head):
        return "mp3"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska family
        return "webm" if b"webm" in head[:64] else "mkv"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return "m4a"
        return "mov" if brand == _QT_BRAND else "mp4"
    if len(head) >= 8 and head[4:8] in _QT_ATOMS:
        return "mov"
    return _sniff_text(head)


def _is_mp3_frame(head: bytes) -> bool:
    """An MPEG audio layer III frame header: 11 sync bits, a valid version and layer 3."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer == 0b01 and bitrate not in (0, 0xF) and rate != 0b11


def _sniff_text(head: bytes) -> str | None:
    if not head:
        return None
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the sniff window is still text.
        if exc.start < len(body) - 3:
            return None
        text = body[: exc.start].decode("utf-8")
    if any(ord(ch) < 32 and ch not in "\t\n\r\f" for ch in text):
        return None
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        if len(head) < SNIFF_WINDOW:  # the whole file is here: check it really is JSON
            try:
                json.loads(text)
            except ValueError:
                return "txt"
        return "json"
    return "txt"
