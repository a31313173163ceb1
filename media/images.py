"""IMAGE/MASK <-> image file bytes: `image_encode` (upload) and `image_decode` (download) under one name."""

from .image_decode import (
    DEFAULT_MAX_BATCH_PIXELS,
    DEFAULT_MAX_PIXELS,
    DecodedImages,
    ImageInfo,
    allocate_batch,
    canvas_size,
    decode_image_into,
    decode_images,
    probe_image,
)
from .image_encode import PNG_COMPRESS_LEVEL, encode_png, encode_png_batch

__all__ = [
    "DEFAULT_MAX_BATCH_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "DecodedImages",
    "ImageInfo",
    "PNG_COMPRESS_LEVEL",
    "allocate_batch",
    "canvas_size",
    "decode_image_into",
    "decode_images",
    "encode_png",
    "encode_png_batch",
    "probe_image",
]
