"""RunningHub's upload size limit, checked before any byte is sent.

RunningHub's newer docs state 30 MB per uploaded file (809 APIKEY_FILE_SIZE_EXCEEDED above
it); the older readme said 10 MB. The limit is a parameter so an account or site with a
different limit can be configured. Megabytes here are decimal (30 MB = 30,000,000 bytes):
the docs don't say which, and the smaller reading fails locally with a clear message
instead of remotely after a long upload.
"""

from __future__ import annotations

from .errors import UploadTooLargeError

DEFAULT_UPLOAD_LIMIT_BYTES = 30_000_000
LEGACY_UPLOAD_LIMIT_BYTES = 10_000_000

_ADVICE = {
    "image": "Downscale the image (e.g. ImageScale / ImageScaleToTotalPixels) or send a smaller crop.",
    "video": "Send a shorter clip, a lower resolution or frame rate, or re-encode at a lower bitrate.",
    "audio": "Send a shorter clip, mono instead of stereo, or a lower sample rate.",
}


def check_upload_size(
    data_or_size: bytes | bytearray | memoryview | int,
    *,
    kind: str = "file",
    label: str | None = None,
    limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES,
) -> int:
    """Return the size in bytes, or raise UploadTooLargeError if it is over `limit_bytes`.

    `kind` ("image", "video", "audio") picks the advice in the message; `label` names the
    file for the user (default: "The <kind> to upload").
    """
    if limit_bytes <= 0:
        raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
    size = data_or_size if isinstance(data_or_size, int) else len(data_or_size)
    if size > limit_bytes:
        raise UploadTooLargeError(
            label or f"The {kind} to upload",
            size,
            limit_bytes,
            _ADVICE.get(kind, "Make the file smaller before uploading."),
        )
    return size
