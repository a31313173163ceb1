"""Downloaded image bytes -> (IMAGE, MASK): formats, modes, EXIF, mixed sizes, hostile input."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from media_files import as_image, av_video_file, pil_bytes, raw_png, rgb_array, smooth_array


def png(arr: np.ndarray, **kw) -> bytes:
    return pil_bytes(Image.fromarray(arr), "PNG", **kw)


# --- formats and modes -------------------------------------------------------------------


def test_png_rgb_exact_and_mask_zero(images):
    src = rgb_array(12, 13)
    out = images.decode_images([png(src)])
    assert out.image.shape == (1, 12, 13, 3) and out.image.dtype == torch.float32
    assert torch.equal(out.image, as_image(src))
    assert out.mask.shape == (1, 12, 13) and torch.count_nonzero(out.mask) == 0


def test_rgba_png_alpha_becomes_one_minus_mask(images):
    rgba = np.random.default_rng(3).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    out = images.decode_images([png(rgba)])
    assert torch.equal(out.image, as_image(rgba[..., :3]))
    assert torch.equal(out.mask[0], 1.0 - torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0))


def test_jpeg_decodes_close_to_source(images):
    src = smooth_array(48, 64)
    out = images.decode_images([pil_bytes(Image.fromarray(src), "JPEG", quality=95)])
    assert out.image.shape == (1, 48, 64, 3)
    assert (out.image[0] - as_image(src)[0]).abs().mean() < 2 / 255
    assert torch.count_nonzero(out.mask) == 0


def test_grayscale_and_cmyk_jpeg(images):
    gray = smooth_array(16, 16)[..., 0]
    out = images.decode_images([pil_bytes(Image.fromarray(gray), "JPEG", quality=95)]).image[0]
    assert torch.equal(out[..., 0], out[..., 1]) and torch.equal(out[..., 1], out[..., 2])
    cmyk = Image.fromarray(smooth_array(16, 16)).convert("CMYK")
    assert images.decode_images([pil_bytes(cmyk, "JPEG")]).image.shape == (1, 16, 16, 3)


def test_webp_lossless_exact_with_alpha_and_lossy_close(images):
    rgba = np.random.default_rng(4).integers(0, 256, (10, 12, 4), dtype=np.uint8)
    out = images.decode_images([pil_bytes(Image.fromarray(rgba), "WEBP", lossless=True, exact=True)])
    assert torch.equal(out.image, as_image(rgba[..., :3]))
    assert torch.equal(out.mask[0], 1.0 - torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0))
    src = smooth_array(32, 32)
    lossy = images.decode_images([pil_bytes(Image.fromarray(src), "WEBP", quality=95)])
    assert (lossy.image[0] - as_image(src)[0]).abs().mean() < 3 / 255


def test_grayscale_png_gives_three_equal_channels(images):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = images.decode_images([png(gray)]).image[0]
    expected = torch.from_numpy(gray.astype(np.float32) / 255.0)
    for c in range(3):
        assert torch.equal(out[..., c], expected)


def test_grayscale_alpha_png(images):
    la = np.stack([np.full((4, 4), 200, np.uint8), np.full((4, 4), 51, np.uint8)], -1)
    out = images.decode_images([pil_bytes(Image.fromarray(la), "PNG")])
    assert torch.allclose(out.mask, torch.full((1, 4, 4), 0.8))
    assert torch.allclose(out.image, torch.full((1, 4, 4, 3), 200 / 255))


def test_palette_png_with_and_without_transparency(images):
    pal = Image.new("P", (6, 4))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    pal.putdata([0, 1, 2, 0, 1, 2] * 4)
    plain = images.decode_images([pil_bytes(pal, "PNG")])
    assert plain.image[0, 0, 0].tolist() == [1.0, 0.0, 0.0] and plain.image[0, 0, 2].tolist() == [0.0, 0.0, 1.0]
    assert torch.count_nonzero(plain.mask) == 0
    see_through = images.decode_images([pil_bytes(pal, "PNG", transparency=1)])
    assert see_through.mask[0, 0].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]


def test_16bit_grayscale_png_keeps_its_precision(images):
    values = np.array([[0, 1, 257, 32768], [40000, 65000, 65534, 65535]], dtype=np.uint16)
    data = pil_bytes(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = images.decode_images([data]).image[0]
    expected = torch.from_numpy(values.astype(np.float32) / 65535.0)
    assert torch.allclose(out[..., 0], expected, atol=1e-7) and torch.equal(out[..., 0], out[..., 2])
    assert out[0, 1, 0] > 0  # 1/65535 survived: not collapsed to 8 bits


def test_16bit_rgb_png_written_by_hand(images):
    h, w = 3, 4
    px = np.random.default_rng(5).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    rows = b"".join(b"\x00" + px[y].astype(">u2").tobytes() for y in range(h))
    out = images.decode_images([raw_png(w, h, 16, 2, rows)]).image[0]
    assert out.shape == (h, w, 3)
    assert (out - torch.from_numpy(px.astype(np.float32) / 65535)).abs().max() <= 1 / 255


def test_gif_first_frame_by_default_all_frames_on_request(images):
    frames = [Image.fromarray(np.full((8, 10, 3), v, np.uint8)) for v in (0, 128, 255)]
    data = pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    first = images.decode_images([data])
    assert first.image.shape == (1, 8, 10, 3) and first.image.max() == 0
    every = images.decode_images([data], frames="all")
    assert every.image.shape == (3, 8, 10, 3)
    assert [round(float(every.image[i].mean()) * 255) for i in range(3)] == [0, 128, 255]


def test_animated_webp_all_frames(images):
    frames = [Image.fromarray(np.full((6, 6, 3), v, np.uint8)) for v in (10, 200)]
    data = pil_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert images.decode_images([data], frames="all").image.shape == (2, 6, 6, 3)


# --- EXIF orientation --------------------------------------------------------------------


def _with_orientation(arr: np.ndarray, fmt: str, orientation: int) -> bytes:
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    return pil_bytes(img, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_applied_like_loadimage(images, orientation):
    src = rgb_array(10, 16, seed=orientation)
    data = _with_orientation(src, "PNG", orientation)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert reference.shape[:2] == ((16, 10) if orientation >= 5 else (10, 16))
    out = images.decode_images([data])
    assert torch.equal(out.image[0], as_image(reference)[0])
    assert images.probe_image(data).width == reference.shape[1]


def test_exif_rotation_on_jpeg(images):
    data = _with_orientation(smooth_array(20, 40), "JPEG", 6)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    out = images.decode_images([data])
    assert out.image.shape == (1, 40, 20, 3)
    assert torch.equal(out.image[0], as_image(reference)[0])


# --- mixed sizes ---------------------------------------------------------------------------


@pytest.fixture
def mixed():
    return rgb_array(20, 40, seed=1), rgb_array(30, 10, seed=2)  # 40x20 (w x h), 10x30


def test_pad_top_left_keeps_each_image_exact_and_masks_the_padding(images, mixed):
    a, b = mixed
    out = images.decode_images([png(a), png(b)])
    assert out.image.shape == (2, 30, 40, 3) and out.mask.shape == (2, 30, 40)
    assert torch.equal(out.image[0, :20, :40], as_image(a)[0])
    assert torch.equal(out.image[1, :30, :10], as_image(b)[0])
    assert torch.count_nonzero(out.mask[0, :20]) == 0 and bool((out.mask[0, 20:] == 1).all())
    assert torch.count_nonzero(out.mask[1, :, :10]) == 0 and bool((out.mask[1, :, 10:] == 1).all())
    assert torch.count_nonzero(out.image[1, :, 10:]) == 0


def test_pad_centered(images, mixed):
    a, b = mixed
    out = images.decode_images([png(a), png(b)], align="center")
    assert torch.equal(out.image[0, 5:25], as_image(a)[0])
    assert torch.equal(out.image[1, :, 15:25], as_image(b)[0])
    assert bool((out.mask[0, :5] == 1).all()) and torch.count_nonzero(out.mask[0, 5:25]) == 0


def test_fit_scales_into_the_first_size_keeping_aspect(images, mixed):
    a, b = mixed
    out = images.decode_images([png(a), png(b)], policy="fit", align="center")
    assert out.image.shape == (2, 20, 40, 3)
    assert torch.equal(out.image[0], as_image(a)[0])
    # 10x30 scaled by 2/3 -> 7x20 (rounded), centred: columns 16..22 hold the picture.
    unmasked_cols = torch.nonzero((out.mask[1] == 0).all(dim=0)).flatten().tolist()
    assert unmasked_cols == list(range(16, 23))
    assert bool((out.mask[1, :, :16] == 1).all()) and bool((out.mask[1, :, 23:] == 1).all())


def test_stretch_only_when_asked(images, mixed):
    a, b = mixed
    out = images.decode_images([png(a), png(b)], policy="stretch")
    assert out.image.shape == (2, 20, 40, 3) and torch.count_nonzero(out.mask) == 0
    expected = np.asarray(Image.fromarray(b).resize((40, 20), Image.Resampling.LANCZOS))
    assert torch.equal(out.image[1], as_image(expected)[0])


def test_error_policy_names_the_sizes(images, errors, mixed):
    a, b = mixed
    with pytest.raises(errors.MediaError, match="40x20.*10x30"):
        images.decode_images([png(a), png(b)], policy="error")


@pytest.mark.parametrize("policy", ["pad", "fit", "stretch", "error"])
def test_same_sizes_are_untouched_by_every_policy(images, policy):
    srcs = [rgb_array(9, 7, seed=s) for s in range(3)]
    out = images.decode_images([png(s) for s in srcs], policy=policy)
    assert torch.equal(out.image, as_image(np.stack(srcs)))


def test_unknown_policy_is_rejected(images):
    with pytest.raises(ValueError, match="policy"):
        images.decode_images([png(rgb_array(2, 2))], policy="squash")


# --- preallocated slots and threads ----------------------------------------------------------


def test_decode_into_slots_from_threads_as_files_arrive(images):
    blobs = [png(rgb_array(16, 16, seed=s)) for s in range(6)] + [png(rgb_array(8, 12, seed=9))]
    infos = [images.probe_image(b) for b in blobs]
    width, height = images.canvas_size(infos)
    out = images.allocate_batch(len(blobs), width, height)
    ptr = out.image.data_ptr()
    threads = [
        threading.Thread(target=images.decode_image_into, args=(b, out.image[i], out.mask[i]))
        for i, b in enumerate(blobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out.image.data_ptr() == ptr
    assert torch.equal(out.image, images.decode_images(blobs).image)
    assert torch.equal(out.mask, images.decode_images(blobs, workers=3).mask)


# --- hostile and broken input ------------------------------------------------------------------


def test_truncated_png_raises_naming_the_output(images, errors):
    data = png(rgb_array(64, 64))
    with pytest.raises(errors.MediaDecodeError, match="output 3 of node 9") as exc:
        images.decode_images([data[: len(data) // 2]], labels=["output 3 of node 9"])
    assert "truncated" in str(exc.value)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP"])
def test_truncated_other_formats_raise(images, errors, fmt):
    data = pil_bytes(Image.fromarray(rgb_array(64, 64)), fmt)
    with pytest.raises(errors.MediaDecodeError):
        images.decode_images([data[: len(data) // 2]])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_files_raise_even_while_pillow_accepts_truncated_images(images, errors, fmt, monkeypatch):
    """ComfyUI's own image loading turns Pillow's LOAD_TRUNCATED_IMAGES on for the whole
    process for a moment; a cut-short download must still be an error, never grey fill."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = pil_bytes(Image.fromarray(rgb_array(64, 64)), fmt)
    with pytest.raises(errors.MediaDecodeError, match="truncated"):
        images.decode_images([data[: len(data) * 3 // 4]])
    assert images.decode_images([data]).image.shape == (1, 64, 64, 3)  # the whole file is fine


def test_corrupt_png_chunk_raises(images, errors):
    data = bytearray(png(rgb_array(32, 32)))
    data[40:60] = b"\xff" * 20  # inside the IDAT data: CRC and zlib both break
    with pytest.raises(errors.MediaDecodeError):
        images.decode_images([bytes(data)])


def test_not_an_image_by_magic_bytes_whatever_the_name(images, errors):
    with pytest.raises(errors.UnsupportedMediaError, match="mp4"):
        images.decode_images([av_video_file("mp4", "mpeg4", n=2)], labels=["result.png"])
    with pytest.raises(errors.UnsupportedMediaError, match="not a supported file type"):
        images.decode_images([b"<html>\x00\x01 error page"])


def test_decompression_bomb_header_is_refused_before_decoding(images, errors):
    bomb = raw_png(9000, 9000, 8, 2)  # 81 megapixels declared, a few bytes of data
    with pytest.raises(errors.MediaTooLargeError, match="output 1.*9000x9000") as exc:
        images.decode_images([bomb], labels=["output 1"])
    assert "decompression-bomb" in str(exc.value) and "max_pixels" in str(exc.value)
    huge = raw_png(60000, 60000, 8, 2)  # over Pillow's own hard limit too
    with pytest.raises(errors.MediaTooLargeError, match="decompression-bomb"):
        images.decode_images([huge])
    with pytest.raises(errors.MediaTooLargeError, match="100x100 = 0.0 megapixels"):
        images.decode_images([png(rgb_array(100, 100))], max_pixels=5000)


def test_batch_pixel_cap(images, errors):
    with pytest.raises(errors.MediaTooLargeError, match="the batch"):
        images.decode_images([png(rgb_array(50, 50))] * 4, max_batch_pixels=9999)


def test_empty_list_is_an_error(images, errors):
    with pytest.raises(errors.MediaError, match="empty"):
        images.decode_images([])
