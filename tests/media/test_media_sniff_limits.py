"""Real type from the first bytes; RunningHub upload fileType; the upload size limit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from media_files import av_audio_file, av_video_file, pil_bytes, rgb_array, sine


def _image(fmt: str, **kw) -> bytes:
    return pil_bytes(Image.fromarray(rgb_array(8, 8)), fmt, **kw)


FILES = {
    "png": lambda: _image("PNG"),
    "jpeg": lambda: _image("JPEG"),
    "webp": lambda: _image("WEBP"),
    "gif": lambda: _image("GIF"),
    "mp4": lambda: av_video_file("mp4", "mpeg4", n=2),
    "mov": lambda: av_video_file("mov", "mpeg4", n=2),
    "mkv": lambda: av_video_file("matroska", "mpeg4", n=2),
    "webm": lambda: av_video_file("webm", "libvpx", n=2),
    "avi": lambda: av_video_file("avi", "mpeg4", n=2),
    "wav": lambda: av_audio_file("wav", "pcm_s16le", sine(8000, 0.1), 8000),
    "mp3": lambda: av_audio_file("mp3", "libmp3lame", sine(44100, 0.2), 44100),
    "flac": lambda: av_audio_file("flac", "flac", sine(8000, 0.1), 8000),
    "ogg": lambda: av_audio_file("ogg", "libopus", sine(48000, 0.1), 48000),
    "m4a": lambda: av_audio_file("ipod", "aac", sine(44100, 0.2), 44100),
    "txt": lambda: "a caption, with ünïcödé\n".encode(),
    "json": lambda: json.dumps({"tags": ["cat", "sofa"], "score": 0.9}).encode(),
}

EXPECTED = {
    # name: (upload fileType, ComfyUI kind)
    "png": ("image", "IMAGE"), "jpeg": ("image", "IMAGE"), "webp": ("image", "IMAGE"),
    "gif": (None, "IMAGE"),
    "mp4": ("video", "VIDEO"), "mov": ("video", "VIDEO"), "mkv": ("video", "VIDEO"),
    "webm": (None, "VIDEO"), "avi": ("video", "VIDEO"),
    "wav": ("audio", "AUDIO"), "mp3": ("audio", "AUDIO"), "flac": ("audio", "AUDIO"),
    "ogg": (None, "AUDIO"), "m4a": (None, "AUDIO"),
    "txt": (None, "STRING"), "json": (None, "STRING"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_sniff_real_files(sniff, name):
    data = FILES[name]()
    kind = sniff.sniff(data)
    assert kind.name == name
    assert (kind.upload_type, kind.comfy_kind) == EXPECTED[name]
    assert kind.comfy_kind == sniff.sniff(data[: sniff.SNIFF_BYTES]).comfy_kind  # the head is enough


def test_mp3_without_id3_tag_is_found_by_its_frame_header(sniff):
    data = FILES["mp3"]()
    assert data.startswith(b"ID3")
    # Strip the ID3v2 tag (syncsafe size in bytes 6..9) to leave a bare frame stream.
    tag = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
    assert sniff.sniff(data[tag:]).name == "mp3"


def test_upload_file_type(sniff):
    assert sniff.upload_file_type(FILES["png"]()) == "image"
    assert sniff.upload_file_type(FILES["mov"]()) == "video"
    assert sniff.upload_file_type(FILES["flac"]()) == "audio"


@pytest.mark.parametrize("name", ["gif", "webm", "txt"])
def test_types_runninghub_does_not_take_as_uploads(sniff, errors, name):
    with pytest.raises(errors.UnsupportedMediaError, match=f"{name} file, which RunningHub does not accept"):
        sniff.upload_file_type(FILES[name](), label="my file")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",  # zip
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3",
        b"\x00\x00\x00\x00\x01\x02\x03\x04",
        b"BM\x36\x00\x00\x00\x00\x00",  # BMP: an image, but not one RunningHub outputs
        bytes(range(256)),
    ],
)
def test_unexpected_bytes_are_rejected_with_a_clear_error(sniff, errors, data):
    with pytest.raises(errors.UnsupportedMediaError, match="output 2 is not a supported file type"):
        sniff.sniff(data, label="output 2")


def test_expect_kind_says_what_the_file_is(sniff, errors):
    with pytest.raises(errors.UnsupportedMediaError, match=r"wav file \(audio\), not image"):
        sniff.expect_kind(FILES["wav"](), {"IMAGE"}, label="output")


def test_broken_json_is_text(sniff):
    assert sniff.sniff(b'{"a": 1,').name == "txt"


# --- upload size limit ---------------------------------------------------------------------


def test_limit_defaults_to_30mb_and_passes_smaller_files(limits):
    assert limits.DEFAULT_UPLOAD_LIMIT_BYTES == 30_000_000
    assert limits.check_upload_size(b"x" * 1000) == 1000
    assert limits.check_upload_size(30_000_000) == 30_000_000


def test_over_the_limit_states_limit_size_and_what_to_do(limits, errors):
    with pytest.raises(errors.UploadTooLargeError) as exc:
        limits.check_upload_size(31_500_000, kind="video", label="The video 'clip.mp4'")
    msg = str(exc.value)
    assert "The video 'clip.mp4' is 31.5 MB" in msg and "up to 30.0 MB" in msg
    assert "shorter clip" in msg
    assert (exc.value.size, exc.value.limit) == (31_500_000, 30_000_000)


def test_limit_is_a_parameter(limits, errors):
    data = b"\x00" * 12_000_000
    assert limits.check_upload_size(data) == 12_000_000
    with pytest.raises(errors.UploadTooLargeError, match="up to 10.0 MB.*Downscale"):
        limits.check_upload_size(data, kind="image", limit_bytes=limits.LEGACY_UPLOAD_LIMIT_BYTES)
    with pytest.raises(ValueError):
        limits.check_upload_size(data, limit_bytes=0)


def test_a_real_encoded_image_checked_against_a_small_limit(images, limits, errors):
    noise = torch.from_numpy(np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32))
    png = images.encode_png_batch(noise)[0]
    with pytest.raises(errors.UploadTooLargeError, match="image"):
        limits.check_upload_size(png, kind="image", limit_bytes=len(png) - 1)
