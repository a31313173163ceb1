"""media.image_batch, the one image decode path: files given one by one, in any order, and
decoded early while they share one size, give exactly the batch of `decode_images`."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from media_files import pil_bytes, rgb_array


def png(arr: np.ndarray) -> bytes:
    return pil_bytes(Image.fromarray(arr), "PNG")


def rgba_array(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)


def decode_as_they_arrive(images, blobs: list[bytes], order: list[int], policy: str = "pad"):
    """What a fetch does: each file added as its download finishes, decoding started at once."""
    with images.ImageBatch(len(blobs), policy=policy, workers=3) as batch:
        for slot in order:
            batch.add(slot, blobs[slot], label=f"output {slot}")
            batch.start()
        return batch.finish()


def test_files_arriving_out_of_order_fill_their_slots_masks_included(images):
    blobs = [png(rgba_array(24, 40, s)) if s % 3 == 0 else png(rgb_array(24, 40, seed=s)) for s in range(7)]
    got = decode_as_they_arrive(images, blobs, order=[4, 0, 6, 2, 1, 5, 3])
    expected = images.decode_images(blobs)
    assert torch.equal(got.image, expected.image) and torch.equal(got.mask, expected.mask)
    alpha = np.asarray(Image.open(io.BytesIO(blobs[0])))[..., 3]
    assert torch.equal(got.mask[0], torch.from_numpy(1 - alpha.astype(np.float32) / 255))
    assert float(got.mask[1].abs().max()) == 0  # opaque: nothing masked


@pytest.mark.parametrize("policy", ["pad", "fit", "stretch"])
def test_a_late_file_of_another_size_puts_every_file_on_the_policy_canvas(images, policy):
    blobs = [png(rgb_array(16, 16, seed=s)) for s in range(4)] + [png(rgba_array(20, 12, 9))]
    got = decode_as_they_arrive(images, blobs, order=[0, 1, 2, 3, 4], policy=policy)  # 4 decoded early
    expected = images.decode_images(blobs, policy=policy)
    assert got.image.shape == expected.image.shape
    assert torch.equal(got.image, expected.image) and torch.equal(got.mask, expected.mask)


def test_the_error_policy_refuses_mixed_sizes_after_early_decoding(images, errors):
    blobs = [png(rgb_array(8, 8, seed=1)), png(rgb_array(8, 10, seed=2))]
    with pytest.raises(errors.MediaError, match="different sizes"):
        decode_as_they_arrive(images, blobs, order=[0, 1], policy="error")


def test_a_file_that_fails_to_decode_on_a_thread_is_named_by_finish(images, errors):
    good = png(rgb_array(64, 64))
    broken = bytearray(good)
    broken[len(good) // 2:len(good) // 2 + 64] = bytes(64)  # its header reads fine, its pixels do not
    images.probe_image(bytes(broken))
    with pytest.raises(errors.MediaDecodeError, match="output 1: the PNG data is corrupt"):
        decode_as_they_arrive(images, [good, bytes(broken), good], order=[2, 1, 0])


def test_every_slot_must_be_given_a_file(images):
    with images.ImageBatch(2) as batch:
        batch.add(0, png(rgb_array(4, 4)), label="output 0")
        with pytest.raises(ValueError, match="never given"):
            batch.finish()
