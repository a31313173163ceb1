"""Many image files -> one (IMAGE [B,H,W,3], MASK [B,H,W]) batch: the pack's one image decode path.

`ImageBatch` takes the files one by one, in any order (as their downloads finish). `add`
reads a file's header at once (`image_decode.probe_image`: type sniffed, pixel cap) and
keeps the file; `start` decodes every file kept so far straight into its slot of the
batch, on up to `workers` threads, while all of them have the first file's size (the
usual case: one workflow's outputs); `finish` waits and returns the batch. When the sizes
differ (or the batch would be over `max_batch_pixels` at that size), nothing more is
decoded early: `finish` then places every file on the canvas the size policy chooses
(`canvas_size`) and decodes each into it. `decode_images` does the same for a list of
files known at once. See `image_decode` for what one file decodes to.

The canvas, by size policy: `pad` the largest width x the largest height (each image
unscaled, padding masked); `fit` and `stretch` the first file's size (scaled keeping the
aspect ratio and padded, or resized); `error` raises when the sizes differ. Same-size
batches come out identical under every policy. Animated files give their first frame;
`decode_images(frames="all")` makes every frame its own batch item, in order.

Memory: the IMAGE batch is allocated once, uninitialised, and every slot is written; the
MASK batch starts as zeros from `calloc` (numpy), whose pages cost no memory until
written. Each file's mask is decoded into a per-thread scratch slot and copied in only
when it has a masked pixel, so the usual all-opaque outputs never touch the MASK: a batch
peaks near the size of its IMAGE plus one decoded file per thread.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from .errors import MediaError, MediaTooLargeError
from .image_decode import (
    ALIGNS,
    DEFAULT_MAX_PIXELS,
    POLICIES,
    Align,
    DecodedImages,
    ImageInfo,
    Policy,
    check_choice,
    decode_image_into,
    probe_image,
)

log = logging.getLogger("runninghub_bridge.media.image_batch")

Frames = Literal["first", "all"]

#: Cap on the pixels of a whole decoded batch (~3 GB of IMAGE + MASK).
DEFAULT_MAX_BATCH_PIXELS = 192 * 1024 * 1024


def canvas_size(infos: Sequence[ImageInfo], policy: Policy = "pad") -> tuple[int, int]:
    """(width, height) of the batch canvas for `policy`; raises for `error` on mixed sizes."""
    check_choice("policy", policy, POLICIES)
    if not infos:
        raise MediaError("No images to decode: the list of downloaded files is empty.")
    sizes = [(i.width, i.height) for i in infos]
    if policy == "pad":
        return max(w for w, _ in sizes), max(h for _, h in sizes)
    if policy == "error" and len(set(sizes)) > 1:
        listing = ", ".join(f"{i.label} {i.width}x{i.height}" for i in infos)
        raise MediaError(
            f"The images have different sizes ({listing}) and the size policy is 'error'. "
            f"Choose 'pad', 'fit' or 'stretch' to combine them into one batch."
        )
    return sizes[0]


def allocate_batch(count: int, width: int, height: int) -> DecodedImages:
    """Output tensors for `count` images: IMAGE uninitialised (every slot gets written),
    MASK as calloc'ed zeros (no memory until a slot is written)."""
    return DecodedImages(
        torch.empty((count, height, width, 3), dtype=torch.float32),
        torch.from_numpy(np.zeros((count, height, width), dtype=np.float32)),
    )


@dataclass(frozen=True)
class _File:
    data: bytes
    label: str
    frame: int
    info: ImageInfo


class _Canvas:
    """An allocated batch, with one scratch mask per decoding thread."""

    def __init__(self, count: int, width: int, height: int):
        self.size = (width, height)
        self.batch = allocate_batch(count, width, height)
        self._scratch = threading.local()

    def scratch_mask(self) -> torch.Tensor:
        mask = getattr(self._scratch, "mask", None)
        if mask is None:
            mask = self._scratch.mask = torch.empty(self.batch.mask.shape[1:], dtype=torch.float32)
        return mask


class _InlinePool:
    """ThreadPoolExecutor's `submit` and `shutdown`, running each job at once in the caller."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed over as a pool would: at result()
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class ImageBatch:
    """Decodes `count` image files into one batch, each as early as the sizes allow.

    Call `add` for every slot (from one thread), `start` whenever decoding may begin,
    then `finish`. Use it as a context manager: leaving it stops its threads (the files
    not yet decoded are dropped)."""

    def __init__(self, count: int, *, policy: Policy = "pad", align: Align = "top-left", workers: int = 1,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS):
        check_choice("policy", policy, POLICIES)
        check_choice("align", align, ALIGNS)
        self.count = count
        self.policy, self.align = policy, align
        self.max_pixels, self.max_batch_pixels = max_pixels, max_batch_pixels
        self._files: list[_File | None] = [None] * count
        self._early: _Canvas | None = None  # the batch at the first file's size
        self._all_fit_early = True  # every file so far has that size (and it is under the cap)
        self._waiting: list[int] = []  # slots added but not yet handed to a thread
        self._jobs: list[Future] = []
        # workers=0: decode in the calling thread (files known at once: the caller waits anyway)
        self._pool = _InlinePool() if workers == 0 else \
            ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rh-decode")

    def add(self, slot: int, data: bytes, *, label: str, frame: int = 0) -> None:
        """Keep file `data` for `slot` (frame `frame` of it); reads its header, raises if it is no image."""
        if self._files[slot] is not None:
            raise ValueError(f"slot {slot} of the image batch was given twice")
        info = probe_image(data, label=label, max_pixels=self.max_pixels)
        self._files[slot] = _File(data, label, frame, info)
        if self._all_fit_early and not self._fits_early_canvas(info):
            self._all_fit_early = False
            self._early = None  # `finish` decodes every file again, on the policy's canvas
        self._waiting.append(slot)

    def start(self) -> None:
        """Decode every file added so far, on the batch's threads, while all share one size."""
        if not self._all_fit_early:
            return
        for slot in self._waiting:
            self._jobs.append(self._pool.submit(self._decode, self._early, slot))
        self._waiting.clear()

    def finish(self) -> DecodedImages:
        """The batch: every file decoded into it; raises the first file's decoding error."""
        missing = [slot for slot, f in enumerate(self._files) if f is None]
        if missing:
            raise ValueError(f"slots {missing} of the image batch were never given a file")
        self.start()
        self._wait()
        if self._all_fit_early and self._early is not None:
            canvas = self._early
        else:
            canvas = self._decode_on_policy_canvas()
        log.debug("decoded %d image(s) into %s (policy %s)", self.count, tuple(canvas.batch.image.shape),
                  self.policy)
        return canvas.batch

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ImageBatch":
        return self

    def __exit__(self, *exc_info) -> bool:
        self.close()
        return False

    # --- internals ---------------------------------------------------------------------

    def _fits_early_canvas(self, info: ImageInfo) -> bool:
        """Allocate the batch at the first file's size; false once a file has another size
        (or when that batch would be over the cap: `finish` raises the clear error)."""
        if self._early is None:
            if self.count * info.width * info.height > self.max_batch_pixels:
                return False
            self._early = _Canvas(self.count, info.width, info.height)
        return (info.width, info.height) == self._early.size

    def _decode_on_policy_canvas(self) -> _Canvas:
        width, height = canvas_size([f.info for f in self._files], self.policy)
        pixels = self.count * width * height
        if pixels > self.max_batch_pixels:
            raise MediaTooLargeError(
                "the batch",
                f"{self.count} images of {width}x{height} would be {pixels / 1e6:.0f} megapixels, "
                f"over the cap of {self.max_batch_pixels / 1e6:.0f}",
                "Fetch fewer outputs at once, or raise max_batch_pixels if this machine has the memory.",
            )
        canvas = _Canvas(self.count, width, height)
        self._jobs = [self._pool.submit(self._decode, canvas, slot) for slot in range(self.count)]
        self._wait()
        return canvas

    def _decode(self, canvas: _Canvas, slot: int) -> None:
        f = self._files[slot]
        mask = canvas.scratch_mask()
        decode_image_into(f.data, canvas.batch.image[slot], mask, label=f.label, policy=self.policy,
                          align=self.align, frame=f.frame, max_pixels=self.max_pixels)
        if mask.numpy().any():  # numpy: torch's reduction waits for its thread pool on a busy machine
            canvas.batch.mask[slot].copy_(mask)

    def _wait(self) -> None:
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()  # the first decoding error is raised


def decode_images(
    blobs: Sequence[bytes],
    *,
    labels: Sequence[str] | None = None,
    policy: Policy = "pad",
    align: Align = "top-left",
    frames: Frames = "first",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS,
    workers: int = 1,
) -> DecodedImages:
    """Decode files known at once into one (IMAGE, MASK) batch; `frames="all"` makes every
    frame of an animated file its own batch item. See `image_decode` for the policies.
    With one worker the files are decoded in the calling thread (no thread to start and
    hand over to: ~1–4 ms a call on a busy 2-core machine)."""
    check_choice("frames", frames, ("first", "all"))
    if labels is None:
        labels = [f"image {i + 1} of {len(blobs)}" for i in range(len(blobs))]
    if len(labels) != len(blobs):
        raise ValueError(f"{len(labels)} labels for {len(blobs)} files")
    items = _frames_of(blobs, labels, max_pixels) if frames == "all" else \
        [(data, label, 0) for data, label in zip(blobs, labels)]
    with ImageBatch(len(items), policy=policy, align=align, workers=0 if workers <= 1 else workers,
                    max_pixels=max_pixels, max_batch_pixels=max_batch_pixels) as batch:
        for slot, (data, label, frame) in enumerate(items):
            batch.add(slot, data, label=label, frame=frame)
        return batch.finish()


def _frames_of(blobs: Sequence[bytes], labels: Sequence[str], max_pixels: int) -> list[tuple[bytes, str, int]]:
    """(file, label, frame) for every frame of every file; a multi-frame file's labels say which frame."""
    items = []
    for data, label in zip(blobs, labels):
        count = probe_image(data, label=label, max_pixels=max_pixels).frames
        items += [(data, label if count == 1 else f"{label} (frame {f + 1})", f) for f in range(count)]
    return items
