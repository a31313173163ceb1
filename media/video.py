"""Video at the bytes level, with PyAV. ComfyUI's VIDEO object is built by the host adapter.

- `probe_video_file(path)`: what a downloaded (untrusted) video file is, from its headers
  plus one decoded frame to prove it plays: container, codec, size, fps, frame count,
  duration, audio. FFmpeg reads the file itself: only those parts, never the whole file
  into memory, and nothing is decoded beyond that frame. `probe_video(data)` does the
  same for bytes already in memory.
- `encode_mp4(frames, fps, audio=None)`: an IMAGE batch [N,H,W,3] (+ optional AUDIO) as
  MP4 bytes, for when a VIDEO must be made from frames: H.264 (libx264, or the first of
  `VIDEO_CODEC_PREFERENCE` this PyAV build has), yuv420p (BT.601 limited range, what
  players assume for SD/HD without tags), AAC audio cut to the video's length as
  ComfyUI's own VIDEO writer does. yuv420p needs even sizes: `odd_size="pad"` (default)
  repeats the last row/column, `"crop"` drops it.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np
import torch

from .errors import MediaDecodeError, MediaEncodeError, MediaTooLargeError
from .pixels import to_uint8
from .sniff import SNIFF_WINDOW, expect_kind

log = logging.getLogger("runninghub_bridge.media.video")

#: Encoders tried in order for encode_mp4; the first this av build has wins.
VIDEO_CODEC_PREFERENCE = ("libx264", "libopenh264", "mpeg4")
#: Cap on the frame size a downloaded video may declare (8K UHD).
DEFAULT_MAX_VIDEO_PIXELS = 7680 * 4320

_AV_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError, IndexError, StopIteration)


@dataclass(frozen=True)
class VideoInfo:
    label: str
    kind: str  # sniffed: "mp4", "mov", "webm", "mkv", "avi"
    container: str  # FFmpeg demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # e.g. "h264"
    width: int
    height: int
    pix_fmt: str | None
    fps: Fraction | None  # average frame rate, None if the file does not say
    frame_count: int | None
    frame_count_exact: bool  # False when estimated from duration x fps
    duration: float | None  # seconds
    audio_codec: str | None  # None: no audio stream
    audio_sample_rate: int | None
    audio_channels: int | None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


def probe_video_file(path: str | os.PathLike, *, label: str = "video",
                     max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS) -> VideoInfo:
    """Describe the video file at `path`; raise MediaDecodeError if it is not a decodable video."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_WINDOW)
    kind = expect_kind(head, {"VIDEO"}, label=label).name
    return _probe(os.fspath(path), kind, label, max_pixels)


def probe_video(data: bytes, *, label: str = "video", max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS) -> VideoInfo:
    """Describe video bytes; raise MediaDecodeError if they are not a decodable video."""
    kind = expect_kind(data, {"VIDEO"}, label=label).name
    return _probe(io.BytesIO(data), kind, label, max_pixels)


def available_video_encoder() -> str:
    """The first encoder of VIDEO_CODEC_PREFERENCE in this av build."""
    for name in VIDEO_CODEC_PREFERENCE:
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
            except _AV_ERRORS:
                continue
            return name
    raise MediaEncodeError(
        f"This PyAV build has none of the video encoders {', '.join(VIDEO_CODEC_PREFERENCE)}; "
        f"install a PyAV wheel with H.264 (pip install av)."
    )


def encode_mp4(
    frames: torch.Tensor,
    fps: float | Fraction,
    *,
    audio: dict[str, Any] | None = None,
    crf: int = 19,
    preset: str = "fast",
    odd_size: Literal["pad", "crop"] = "pad",
) -> bytes:
    """MP4 bytes of an IMAGE batch [N,H,W,C] at `fps`, with AUDIO (batch item 0) if given."""
    frames = _check_frames(frames)
    rate = _rate(fps)
    n, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    out_w, out_h = _even_size(width, height, odd_size)
    codec = available_video_encoder()
    buf = io.BytesIO()
    try:
        with av.open(buf, mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
            stream.codec_context.time_base = 1 / rate
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": preset}
            audio_stream, waveform, sample_rate = _add_audio(container, audio, n / rate)
            for i in range(n):
                pixels = _even_pixels(to_uint8(frames[i]).numpy(), out_w, out_h)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            if audio_stream is not None:
                aframe = av.AudioFrame.from_ndarray(
                    waveform.numpy(), format="fltp", layout="mono" if waveform.shape[0] == 1 else "stereo"
                )
                aframe.sample_rate, aframe.pts = sample_rate, 0
                container.mux(audio_stream.encode(aframe))
                container.mux(audio_stream.encode(None))
    except _AV_ERRORS as exc:
        raise MediaEncodeError(f"Could not encode {n} frames of {width}x{height} as MP4 ({codec}): {exc}") from exc
    log.debug("encoded %d frames %dx%d at %s fps with %s: %d bytes", n, out_w, out_h, rate, codec, buf.tell())
    return buf.getvalue()


# --- internals -------------------------------------------------------------------------


def _probe(source: str | io.BytesIO, kind: str, label: str, max_pixels: int) -> VideoInfo:
    """`source` (a path FFmpeg opens itself, or bytes in memory) as VideoInfo; `kind` is its sniffed type."""
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                raise MediaDecodeError(label, f"the {kind} file has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            width, height = int(ctx.width or 0), int(ctx.height or 0)
            if width <= 0 or height <= 0:
                raise MediaDecodeError(label, f"its video stream declares no frame size ({width}x{height})")
            if width * height > max_pixels:
                raise MediaTooLargeError(
                    label,
                    f"its frames are {width}x{height}, over the cap of {max_pixels / 1e6:.1f} megapixels",
                    "If the video is genuine, raise max_pixels; otherwise the output is not a normal video.",
                )
            fps = Fraction(stream.average_rate) if stream.average_rate else None
            duration = _duration(container, stream)
            frame_count, exact = _frame_count(stream, fps, duration)
            if _first_frame(container, stream) is None:
                raise MediaDecodeError(label, f"no frame of its {ctx.name} stream could be decoded")
            audio = container.streams.audio[0] if container.streams.audio else None
            return VideoInfo(
                label=label,
                kind=kind,
                container=container.format.name,
                codec=ctx.name,
                width=width,
                height=height,
                pix_fmt=ctx.pix_fmt,
                fps=fps,
                frame_count=frame_count,
                frame_count_exact=exact,
                duration=duration,
                audio_codec=audio.codec_context.name if audio else None,
                audio_sample_rate=int(audio.codec_context.sample_rate) if audio else None,
                audio_channels=int(audio.codec_context.channels) if audio else None,
            )
    except MediaDecodeError:
        raise
    except _AV_ERRORS as exc:
        raise MediaDecodeError(label, f"the {kind} data is corrupt or truncated ({exc})") from exc


def _duration(container, stream) -> float | None:
    if container.duration is not None and container.duration > 0:
        return float(container.duration / av.time_base)
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _frame_count(stream, fps: Fraction | None, duration: float | None) -> tuple[int | None, bool]:
    if stream.frames and stream.frames > 0:
        return int(stream.frames), True
    if fps and duration:
        return max(1, round(duration * float(fps))), False
    return None, False


def _first_frame(container, stream):
    for frame in container.decode(stream):
        return frame
    return None


def _check_frames(frames: Any) -> torch.Tensor:
    if not isinstance(frames, torch.Tensor):
        raise MediaEncodeError(f"Frames must be an IMAGE tensor, got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or 0 in frames.shape:
        raise MediaEncodeError(
            f"Frames must be an IMAGE batch [frames, height, width, 1|3|4 channels]; got {tuple(frames.shape)}."
        )
    if frames.shape[-1] == 1:
        frames = frames.expand(-1, -1, -1, 3)
    return frames[..., :3]


def _rate(fps: float | Fraction) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(1001 * 1000)
    except (TypeError, ValueError):
        raise MediaEncodeError(f"fps must be a number, got {fps!r}") from None
    if not 0 < rate <= 1000:
        raise MediaEncodeError(f"fps must be between 0 and 1000, got {float(rate):g}")
    return rate


def _even_size(width: int, height: int, odd_size: str) -> tuple[int, int]:
    if odd_size == "pad":
        return width + width % 2, height + height % 2
    if odd_size == "crop":
        if width < 2 or height < 2:
            raise MediaEncodeError(f"Frames of {width}x{height} are too small to crop to even; use odd_size='pad'.")
        return width - width % 2, height - height % 2
    raise ValueError(f"odd_size must be 'pad' or 'crop', got {odd_size!r}")


def _even_pixels(pixels: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    if (w, h) == (out_w, out_h):
        return pixels
    if out_w <= w and out_h <= h:
        return np.ascontiguousarray(pixels[:out_h, :out_w])
    return np.pad(pixels, ((0, out_h - h), (0, out_w - w), (0, 0)), mode="edge")


def _add_audio(container, audio: dict[str, Any] | None, seconds: Fraction):
    if audio is None:
        return None, None, None
    if not isinstance(audio, dict) or not isinstance(audio.get("waveform"), torch.Tensor):
        raise MediaEncodeError("audio must be ComfyUI's AUDIO dict with a 'waveform' tensor and 'sample_rate'.")
    waveform = audio["waveform"].detach().to("cpu", torch.float32)
    waveform = waveform[0] if waveform.ndim == 3 else waveform  # first item of a batch
    if waveform.ndim != 2 or waveform.shape[0] not in (1, 2) or waveform.shape[1] == 0:
        raise MediaEncodeError(
            f"Audio for an MP4 must be mono or stereo [1, 1|2, samples]; got {tuple(audio['waveform'].shape)}."
        )
    sample_rate = int(audio["sample_rate"])
    keep = math.ceil(seconds * sample_rate)
    waveform = torch.nan_to_num(waveform[:, :keep]).clamp_(-1.0, 1.0).contiguous()
    stream = container.add_stream("aac", rate=sample_rate, layout="mono" if waveform.shape[0] == 1 else "stereo")
    return stream, waveform, sample_rate
