"""One downloaded image file -> its slot of an (IMAGE [B,H,W,3], MASK [B,H,W]) batch.

`image_batch` builds batches from many files with these two functions: `probe_image`
(header only) and `decode_image_into` (the pixels, written in place into a slot).

Inputs are untrusted. Each file is identified by its magic bytes (the URL extension and
RunningHub's `fileType` are ignored) and opened with only the matching Pillow plugin; the
pixel count its header declares is capped before any pixel is decoded (decompression
bombs); a file that cannot be decoded raises `MediaDecodeError` naming it. Nothing is ever
replaced by a placeholder.

Accepted: PNG (8/16-bit, grayscale, palette, with or without alpha or tRNS), JPEG
(grayscale, CMYK), WEBP, GIF. EXIF orientation is applied as ComfyUI's LoadImage does
(for PNG only an eXIf chunk ahead of the pixel data counts, so the header alone decides the
size). 16-bit grayscale PNGs keep their precision (v / 65535). Values follow LoadImage:
image = v / 255 in float32, mask = 1 - alpha / 255, zeros where a file has no alpha.
Animated files (GIF, animated WEBP, APNG): `frame` picks the frame (0, the first, as a
still output is meant, by default).

A file whose size differs from its slot's, `policy`:
- `pad` (default): placed unscaled at `align` ("top-left" default, or "center"); the
  padding is black and masked (mask 1, like a transparent pixel). `image[:h, :w]` is then
  the exact original.
- `fit`: scaled, keeping its aspect ratio, to fit the slot, placed at `align`, and padded
  (masked) like `pad`.
- `stretch`: resized to the slot, aspect ratio not kept. Only when asked: it distorts.
- `error`: raise.
A file of the slot's size comes out identical under every policy. `decode_image_into` is
thread-safe as long as each thread writes its own slot (Pillow and numpy release the GIL
while they work).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image

from .errors import MediaDecodeError, MediaError, MediaTooLargeError
from .sniff import expect_kind

Policy = Literal["pad", "fit", "stretch", "error"]
Align = Literal["top-left", "center"]
POLICIES: tuple[str, ...] = ("pad", "fit", "stretch", "error")
ALIGNS: tuple[str, ...] = ("top-left", "center")

#: Cap on the pixels one file may declare (8192 x 8192; ~0.8 GB as a float IMAGE).
DEFAULT_MAX_PIXELS = 8192 * 8192

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_HIGH_BIT_GRAY = ("I;16", "I;16B", "I;16L", "I")
# What Pillow raises on bad, truncated or hostile image data.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error)


class DecodedImages(NamedTuple):
    image: torch.Tensor  # [B,H,W,3] float32 0..1
    mask: torch.Tensor  # [B,H,W] float32 0..1, 1 = masked (transparent / padding)


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, with width/height after EXIF orientation."""

    label: str
    format: str  # sniffed: "png", "jpeg", "webp", "gif"
    width: int
    height: int
    frames: int
    mode: str  # Pillow mode of frame 0, e.g. "RGB", "RGBA", "P", "I;16"
    orientation: int  # EXIF orientation, 1 when absent


def probe_image(data: bytes, *, label: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read one file's header (no pixel decoding); raise if it is not an image or too big."""
    with _opened(data, label, max_pixels) as (img, kind, orientation):
        width, height = img.size
        if orientation >= 5:  # the four orientations that swap the axes
            width, height = height, width
        try:
            frames = int(getattr(img, "n_frames", 1))
        except _PIL_ERRORS as exc:
            raise MediaDecodeError(label, f"its frames cannot be read ({exc})") from exc
        return ImageInfo(label, kind, width, height, frames, img.mode, orientation)


def decode_image_into(
    data: bytes,
    image_slot: torch.Tensor,
    mask_slot: torch.Tensor,
    *,
    label: str = "image",
    policy: Policy = "pad",
    align: Align = "top-left",
    frame: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageInfo:
    """Decode one file (frame `frame`) into image_slot [H,W,3] and mask_slot [H,W], in place.

    The slot's size is the target: under `pad` the image must fit in it; under `fit` and
    `stretch` it is resized to it; under `error` it must match exactly. Thread-safe as
    long as each thread writes its own slot.
    """
    check_choice("policy", policy, POLICIES)
    check_choice("align", align, ALIGNS)
    slot_h, slot_w = image_slot.shape[0], image_slot.shape[1]
    if image_slot.shape != (slot_h, slot_w, 3) or mask_slot.shape != (slot_h, slot_w):
        raise ValueError(f"slots must be [H,W,3] and [H,W]; got {tuple(image_slot.shape)}, {tuple(mask_slot.shape)}")
    with _opened(data, label, max_pixels) as (img, kind, orientation):
        try:
            if frame:
                img.seek(frame)
            img.load()
            pic = _normalise_mode(img)
            if orientation in _TRANSPOSE:
                pic = pic.transpose(_TRANSPOSE[orientation])
            pic = _to_target(pic, slot_w, slot_h, policy, label)
        except MediaError:
            raise
        except _PIL_ERRORS as exc:
            raise MediaDecodeError(label, f"the {kind.upper()} data is corrupt or truncated ({exc})") from exc
        _write(pic, image_slot, mask_slot, align)
        return ImageInfo(label, kind, pic.width, pic.height, int(getattr(img, "n_frames", 1)), img.mode, orientation)


# --- internals -------------------------------------------------------------------------


class _opened:
    """Context manager: sniff, open with the one matching plugin, cap pixels; yields (img, kind, orientation)."""

    def __init__(self, data: bytes, label: str, max_pixels: int):
        self.data, self.label, self.max_pixels = data, label, max_pixels
        self.img: Image.Image | None = None

    def __enter__(self):
        kind = expect_kind(self.data, {"IMAGE"}, label=self.label).name
        _check_complete(self.data, kind, self.label)
        try:
            self.img = Image.open(io.BytesIO(self.data), formats=[_PIL_FORMAT[kind]])
        except Image.DecompressionBombError as exc:
            reason = f"it declares more pixels than Pillow's decompression-bomb limit ({exc})"
            raise MediaTooLargeError(self.label, reason, _BOMB_HINT) from exc
        except _PIL_ERRORS as exc:
            raise MediaDecodeError(self.label, f"its {kind.upper()} header is invalid ({exc})") from exc
        width, height = self.img.size
        if width <= 0 or height <= 0:
            raise MediaDecodeError(self.label, f"it declares an empty size {width}x{height}")
        if width * height > self.max_pixels:
            raise MediaTooLargeError(
                self.label,
                f"it declares {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
                f"cap of {self.max_pixels / 1e6:.1f} megapixels (decompression-bomb guard)",
                _BOMB_HINT,
            )
        return self.img, kind, _orientation(self.img)

    def __exit__(self, *exc_info):
        if self.img is not None:
            self.img.close()
        return False


def _check_complete(data: bytes, kind: str, label: str) -> None:
    """Refuse a truncated file by its structure (PNG's IEND chunk, JPEG's EOI marker, GIF's
    trailer, WEBP's RIFF length), independent of Pillow's process-wide LOAD_TRUNCATED_IMAGES:
    ComfyUI turns that on while its own nodes load images, and a truncated download decoded
    then would come out grey-filled, a placeholder in disguise."""
    tail = data[-4096:]
    complete = {
        "png": b"IEND" in tail,
        "jpeg": b"\xff\xd9" in tail,  # entropy-coded data stuffs 0xFF, so only markers match
        "gif": b";" in data[-8:],
        "webp": len(data) >= 12 and int.from_bytes(data[4:8], "little") + 8 <= len(data),
    }.get(kind, True)
    if not complete:
        raise MediaDecodeError(label, f"the {kind.upper()} file is truncated (no end marker): the download "
                                      "was cut short or the file is damaged")


_BOMB_HINT = (
    "If the image is genuine, raise max_pixels for this node; otherwise the remote output is "
    "not a normal image."
)


def _orientation(img: Image.Image) -> int:
    try:
        if img.format == "PNG":  # PNG's getexif() would decode the pixels to find a late eXIf
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = img.getexif()
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except _PIL_ERRORS + (TypeError,):
        return 1
    return value if value in _TRANSPOSE else 1


def _normalise_mode(img: Image.Image) -> Image.Image:
    """RGB, RGBA, or F (high-bit grayscale, 0..65535) with the same pixels."""
    if img.mode in _HIGH_BIT_GRAY:
        return img.convert("F")
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    target = "RGBA" if has_alpha else "RGB"
    return img if img.mode == target else img.convert(target)


def _to_target(pic: Image.Image, slot_w: int, slot_h: int, policy: str, label: str) -> Image.Image:
    w, h = pic.size
    if (w, h) == (slot_w, slot_h):
        return pic
    if policy == "pad":
        if w > slot_w or h > slot_h:
            raise MediaError(f"{label} is {w}x{h}, larger than its {slot_w}x{slot_h} slot; use a larger canvas.")
        return pic
    if policy == "error":
        raise MediaError(
            f"{label} is {w}x{h} but the batch is {slot_w}x{slot_h} and the size policy is 'error'. "
            f"Choose 'pad', 'fit' or 'stretch'."
        )
    if policy == "stretch":
        return pic.resize((slot_w, slot_h), Image.Resampling.LANCZOS)
    scale = min(slot_w / w, slot_h / h)  # fit
    size = (min(slot_w, max(1, round(w * scale))), min(slot_h, max(1, round(h * scale))))
    return pic.resize(size, Image.Resampling.LANCZOS)


def _write(pic: Image.Image, image_slot: torch.Tensor, mask_slot: torch.Tensor, align: str) -> None:
    slot_h, slot_w = mask_slot.shape
    w, h = pic.size
    x0, y0 = ((slot_w - w) // 2, (slot_h - h) // 2) if align == "center" else (0, 0)
    if (w, h) != (slot_w, slot_h):
        image_slot.zero_()
        mask_slot.fill_(1.0)  # padding counts as transparent, i.e. masked
    img_np = image_slot.numpy()[y0 : y0 + h, x0 : x0 + w]
    mask_np = mask_slot.numpy()[y0 : y0 + h, x0 : x0 + w]
    arr = np.asarray(pic)
    if pic.mode == "F":  # 16-bit grayscale: keep the precision
        np.divide(arr, np.float32(65535.0), out=img_np[..., 0])
        np.clip(img_np[..., 0], 0.0, 1.0, out=img_np[..., 0])
        img_np[..., 1] = img_np[..., 0]
        img_np[..., 2] = img_np[..., 0]
        mask_np.fill(0.0)
        return
    # float32(v) / 255 and 1 - a / 255, the exact values ComfyUI's LoadImage produces.
    np.divide(arr[..., :3], np.float32(255.0), out=img_np, dtype=np.float32)
    if pic.mode == "RGBA":
        np.divide(arr[..., 3], np.float32(255.0), out=mask_np, dtype=np.float32)
        np.subtract(np.float32(1.0), mask_np, out=mask_np)
    else:
        mask_np.fill(0.0)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
