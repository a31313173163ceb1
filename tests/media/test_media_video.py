"""Video bytes: probing real files without decoding them whole; frames (+ audio) -> MP4."""

from __future__ import annotations

import io
import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from media_files import as_image, av_video_file, pil_bytes, rgb_array, sine, smooth_array


def test_probe_a_small_mp4_made_with_av(video):
    info = video.probe_video(av_video_file("mp4", "mpeg4", n=10, w=64, h=48, fps=10), label="out.mp4")
    assert (info.kind, info.codec, info.width, info.height) == ("mp4", "mpeg4", 64, 48)
    assert info.fps == 10 and info.frame_count == 10 and info.frame_count_exact
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert not info.has_audio and info.pix_fmt == "yuv420p"
    assert "mp4" in info.container


@pytest.mark.parametrize(
    "fmt,encoder,kind,codec",
    [("webm", "libvpx", "webm", "vp8"), ("matroska", "mpeg4", "mkv", "mpeg4"),
     ("avi", "mpeg4", "avi", "mpeg4"), ("mov", "mpeg4", "mov", "mpeg4")],
)
def test_probe_other_containers(video, fmt, encoder, kind, codec):
    info = video.probe_video(av_video_file(fmt, encoder, n=6, w=32, h=32, fps=6))
    assert (info.kind, info.codec, info.width, info.height) == (kind, codec, 32, 32)
    assert info.frame_count in (5, 6, 7)  # exact or estimated from duration x fps


def test_available_encoder_is_h264(video):
    assert "libx264" in av.codecs_available
    assert video.available_video_encoder() == "libx264"


def _decode_all(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_frames_to_mp4_to_probe(video):
    src = np.stack([smooth_array(48, 64, phase=i / 4) for i in range(15)])
    data = video.encode_mp4(as_image(src), 15)
    info = video.probe_video(data)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 64, 48)
    assert info.frame_count == 15 and info.fps == 15 and info.duration == pytest.approx(1.0, abs=0.05)
    decoded = np.stack(_decode_all(data))
    assert decoded.shape == src.shape
    assert np.abs(decoded.astype(int) - src).mean() < 4  # lossy, but the same pictures


@pytest.mark.parametrize("odd_size,expected", [("pad", (38, 26)), ("crop", (36, 24))])
def test_odd_sizes_are_made_even(video, odd_size, expected):
    src = np.stack([rgb_array(25, 37, seed=i) for i in range(3)])
    info = video.probe_video(video.encode_mp4(as_image(src), 24, odd_size=odd_size))
    assert (info.width, info.height) == expected


def test_fractional_fps_and_audio(video):
    frames = torch.rand(30, 32, 48, 3)
    sound = {"waveform": sine(48000, 3.0, channels=2)[None], "sample_rate": 48000}
    info = video.probe_video(video.encode_mp4(frames, Fraction(30000, 1001), audio=sound))
    assert info.fps == Fraction(30000, 1001) and info.frame_count == 30
    assert (info.audio_codec, info.audio_sample_rate, info.audio_channels) == ("aac", 48000, 2)
    assert info.duration == pytest.approx(30 * 1001 / 30000, abs=0.1)  # audio cut to the video


def test_single_frame_and_grayscale(video):
    info = video.probe_video(video.encode_mp4(torch.rand(16, 16, 1), 1))
    assert (info.frame_count, info.width) == (1, 16)


def test_probe_rejects_non_video_and_corrupt_bytes(video, errors):
    png = pil_bytes(Image.fromarray(rgb_array(8, 8)), "PNG")
    with pytest.raises(errors.UnsupportedMediaError, match="png file"):
        video.probe_video(png, label="output 2")
    mp4 = av_video_file("mp4", "mpeg4", n=5)
    with pytest.raises(errors.MediaDecodeError, match="output 3"):
        video.probe_video(mp4[:200], label="output 3")
    broken = bytearray(mp4)
    broken[48:] = bytes(len(broken) - 48)  # headers gone after the ftyp box
    with pytest.raises(errors.MediaDecodeError):
        video.probe_video(bytes(broken))


def test_probe_video_file_leaves_the_file_to_ffmpeg_and_reads_none_of_it_into_memory(video, tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(video.encode_mp4(torch.rand(24, 240, 320, 3, generator=torch.Generator().manual_seed(3)), 12))
    size = path.stat().st_size  # noise: about 1.2 MB
    tracemalloc.start()
    try:
        info = video.probe_video_file(path, label="out.mp4")
        _, peak = tracemalloc.get_traced_memory()  # Python's allocations: a read of the file would be one
    finally:
        tracemalloc.stop()
    assert peak < size / 4, f"{peak} bytes allocated to probe a {size}-byte file"
    assert (info.kind, info.width, info.height, info.frame_count) == ("mp4", 320, 240, 24)
    assert info == video.probe_video(path.read_bytes(), label="out.mp4")


def test_probe_video_file_rejects_non_video_and_corrupt_files(video, errors, tmp_path):
    png = tmp_path / "out.mp4"
    png.write_bytes(pil_bytes(Image.fromarray(rgb_array(8, 8)), "PNG"))
    with pytest.raises(errors.UnsupportedMediaError, match="output 2 is a png file"):
        video.probe_video_file(png, label="output 2")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(av_video_file("mp4", "mpeg4", n=5)[:200])
    with pytest.raises(errors.MediaDecodeError, match="output 3"):
        video.probe_video_file(cut, label="output 3")


def test_probe_size_cap(video, errors):
    with pytest.raises(errors.MediaTooLargeError, match="64x48"):
        video.probe_video(av_video_file("mp4", "mpeg4", n=2), max_pixels=1000)


@pytest.mark.parametrize("frames,fps,match", [(torch.rand(2, 8, 8), 10, "IMAGE batch"), (torch.rand(2, 8, 8, 3), 0, "fps"), ("x", 10, "tensor")])
def test_encode_rejects_bad_input(video, errors, frames, fps, match):
    with pytest.raises(errors.MediaEncodeError, match=match):
        video.encode_mp4(frames, fps)
