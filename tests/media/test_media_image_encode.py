"""IMAGE (+ MASK) -> PNG bytes: exact pixels, alpha = 1 - mask, batch, clear shape errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from media_files import as_image, rgb_array
from support.pack import pack_module


def _open(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return img


def test_batch_gives_one_rgb_png_per_item_with_exact_pixels(images):
    src = np.stack([rgb_array(30, 41, seed=s) for s in range(3)])
    pngs = images.encode_png_batch(as_image(src))
    assert len(pngs) == 3
    for i, png in enumerate(pngs):
        img = _open(png)
        assert img.mode == "RGB" and img.size == (41, 30)
        np.testing.assert_array_equal(np.asarray(img), src[i])


def test_full_round_trip_uint8_to_float_to_png_to_float_is_exact(images):
    src = rgb_array(17, 23, seed=7)
    value = as_image(src)
    decoded = images.decode_images(images.encode_png_batch(value))
    assert torch.equal(decoded.image, value)
    assert torch.count_nonzero(decoded.mask) == 0


def test_conversion_rounds_clamps_and_zeroes_nan(images):
    v = torch.tensor([[[[10.4 / 255, 10.6 / 255, -0.5], [1.5, float("nan"), 254.5001 / 255]]]])
    px = np.asarray(_open(images.encode_png_batch(v)[0]))
    assert px.tolist() == [[[10, 11, 0], [255, 0, 255]]]


def test_mask_rides_as_alpha_and_loadimage_semantics_give_it_back(images):
    src = rgb_array(20, 24, seed=1)
    alpha = np.random.default_rng(2).integers(0, 256, (20, 24), dtype=np.uint8)
    mask = 1.0 - torch.from_numpy(alpha.astype(np.float32) / 255.0)  # as LoadImage makes it
    png = images.encode_png_batch(as_image(src), mask)[0]
    img = _open(png)
    assert img.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(img.getchannel("A")), alpha)
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), src)
    # ComfyUI's LoadImage on the remote side: mask = 1 - alpha / 255.
    remote_mask = 1.0 - torch.from_numpy(np.array(img.getchannel("A")).astype(np.float32) / 255.0)
    assert torch.equal(remote_mask, mask)
    assert torch.equal(images.decode_images([png]).mask[0], mask)


def test_single_mask_is_broadcast_over_the_batch(images):
    src = np.stack([rgb_array(8, 9, seed=s) for s in range(3)])
    mask = torch.zeros(8, 9)
    mask[2:5, 3:7] = 1.0
    pngs = images.encode_png_batch(as_image(src), mask[None])
    assert len(pngs) == 3
    for png in pngs:
        a = np.asarray(_open(png).getchannel("A"))
        assert (a[2:5, 3:7] == 0).all() and a.sum() == 255 * (72 - 12)


def test_per_image_masks(images):
    src = np.stack([rgb_array(5, 6, seed=s) for s in range(2)])
    mask = torch.stack([torch.zeros(5, 6), torch.ones(5, 6)])
    a0, a1 = (np.asarray(_open(p).getchannel("A")) for p in images.encode_png_batch(as_image(src), mask))
    assert (a0 == 255).all() and (a1 == 0).all()


def test_an_all_zero_mask_of_any_size_means_no_alpha(images):
    """Load Image gives a 64x64 zero mask for an opaque picture: wiring it along must just work,
    and it masks nothing, so the file is the same as without a mask."""
    picture = torch.rand(1, 32, 48, 3)
    [with_empty_mask] = images.encode_png_batch(picture, torch.zeros(1, 64, 64))
    assert with_empty_mask == images.encode_png_batch(picture)[0]
    assert _open(with_empty_mask).mode == "RGB"


def test_no_mask_means_no_alpha_even_for_four_channels(images):
    rgba = torch.rand(1, 6, 7, 4)
    img = _open(images.encode_png_batch(rgba)[0])
    assert img.mode == "RGB"


def test_one_channel_image_is_grayscale(images):
    gray = torch.from_numpy(np.arange(60, dtype=np.float32).reshape(1, 6, 10, 1) / 255.0)
    img = _open(images.encode_png_batch(gray)[0])
    assert img.mode == "L"
    assert np.asarray(img).ravel().tolist() == list(range(60))
    assert _open(images.encode_png_batch(gray, torch.full((6, 10), 0.5))[0]).mode == "LA"


def test_mask_of_another_size_names_both_sizes(images, errors):
    with pytest.raises(errors.MaskSizeMismatchError) as exc:
        images.encode_png_batch(torch.rand(2, 40, 50, 3), torch.ones(40, 60))
    assert "60x40" in str(exc.value) and "50x40" in str(exc.value)


def test_mask_batch_must_be_one_or_the_image_batch(images, errors):
    with pytest.raises(errors.MaskSizeMismatchError, match="2 masks but IMAGE batch has 3"):
        images.encode_png_batch(torch.rand(3, 4, 4, 3), torch.ones(2, 4, 4))


@pytest.mark.parametrize("shape", [(2, 8, 8), (1, 8, 8, 2), (1, 0, 8, 3), (8,)])
def test_bad_image_shapes_are_rejected_with_the_shape(images, errors, shape):
    with pytest.raises(errors.MediaEncodeError, match="IMAGE"):
        images.encode_png_batch(torch.rand(*shape))


def test_encoding_uses_the_measured_fast_level(images):
    src = as_image(rgb_array(64, 64))
    fast = images.encode_png_batch(src)[0]
    assert images.PNG_COMPRESS_LEVEL == 1
    assert fast == images.encode_png_batch(src, compress_level=1)[0]
    assert fast != images.encode_png_batch(src, compress_level=9)[0]


def test_to_uint8_rounds_half_to_even_and_sends_nan_and_infinities_to_the_ends():
    pixels = pack_module("media.pixels")
    values = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.5, 1.5, 0.0, 1.0, 0.5 / 255, 1.5 / 255,
                           2.5 / 255, 127.5 / 255, 0.2, 0.7])
    expected = np.clip(np.rint(np.nan_to_num(values.numpy() * np.float32(255), nan=0.0, posinf=255.0,
                                             neginf=0.0)), 0, 255).astype(np.uint8)
    assert pixels.to_uint8(values).tolist() == expected.tolist()
    assert pixels.to_uint8(values)[:5].tolist() == [0, 255, 0, 0, 255]
