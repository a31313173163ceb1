"""Exceptions of the media layer. Each message says what went wrong and what to do.

All derive from `MediaError`, itself a `ValueError`, so a caller can catch the family or
one case. `label` names the value or output the error is about (e.g. "output 2 of node 9").
"""

from __future__ import annotations


class MediaError(ValueError):
    """Base class: a media value or file could not be converted."""


class UnsupportedMediaError(MediaError):
    """The bytes are not a type this bridge accepts in this place."""


class MediaDecodeError(MediaError):
    """A downloaded file could not be decoded."""

    def __init__(self, label: str, reason: str, hint: str | None = None):
        self.label = label
        self.reason = reason
        hint = hint or (
            "The file may be truncated or not what the remote node claims; "
            "run the task again or check the remote workflow's save node."
        )
        super().__init__(f"Could not decode {label}: {reason.rstrip('. ')}. {hint}")


class MediaTooLargeError(MediaDecodeError):
    """A file declares more pixels / samples than the configured cap (decompression bomb)."""


class MediaEncodeError(MediaError):
    """A ComfyUI value could not be turned into file bytes (bad shape, range, codec...)."""


class MaskSizeMismatchError(MediaEncodeError):
    """The MASK given with an IMAGE does not have the image's size or batch."""


class UploadTooLargeError(MediaError):
    """A file is over RunningHub's upload limit; raised before anything is sent."""

    def __init__(self, label: str, size: int, limit: int, advice: str):
        self.label = label
        self.size = size
        self.limit = limit
        super().__init__(
            f"{label} is {_mb(size)} but RunningHub accepts uploads up to {_mb(limit)} "
            f"({size:,} > {limit:,} bytes). {advice}"
        )


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"
