"""IMAGE/MASK <-> image file bytes: `image_encode` (upload), `image_decode` and `image_batch` (download) under one name."""

from .image_batch import (
    DEFAULT_MAX_BATCH_PIXELS,
    ImageBatch,
    allocate_batch,
    canvas_size,
    decode_images,
)
from .image_decode import (
    DEFAULT_MAX_PIXELS,
    DecodedImages,
    ImageInfo,
    decode_image_into,
    probe_image,
)
from .image_encode import PNG_COMPRESS_LEVEL, encode_png, encode_png_batch

__all__ = [
    "DEFAULT_MAX_BATCH_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "DecodedImages",
    "ImageBatch",
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
