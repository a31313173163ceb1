"""AUDIO <-> file bytes, with PyAV (torchaudio is not needed).

AUDIO is ComfyUI's dict {"waveform": float tensor [B, C, T] in -1..1, "sample_rate": int}.

Upload: `encode_audio` writes one file per batch item. FLAC is the default: lossless and
about half the size of WAV, which matters under RunningHub's 30 MB upload limit (16-bit
stereo 44.1 kHz: ~10 min of WAV, ~20 min of typical FLAC). `bits=16` (default; what
almost every model outputs and expects; error <= 1/32768 per sample) or `bits=24` (for
masters). Samples are rounded to the grid n / 2^(bits-1) and clipped to -1..1; NaN -> 0.
`fmt="wav"` writes PCM WAV instead, for a remote node that wants it.

Download: `decode_audio` reads the first audio stream of any file PyAV can demux (WAV,
MP3, FLAC, Ogg/Opus/Vorbis, M4A/AAC, and also a video file with sound) into
{"waveform": [1, C, T] float32, "sample_rate": int}, the shape ComfyUI's LoadAudio
returns. Integer PCM is scaled as LoadAudio does (int16 / 2^15, int32 / 2^31).
"""

from __future__ import annotations

import io
import logging
from typing import Any, Literal

import av
import numpy as np
import torch

from .errors import MediaDecodeError, MediaEncodeError, MediaTooLargeError
from .sniff import expect_kind

log = logging.getLogger("runninghub_bridge.media.audio")

AudioFormat = Literal["flac", "wav"]
#: Cap on decoded samples (all channels): 2^28 floats = 1 GiB, ~46 min of 48 kHz stereo x 24.
DEFAULT_MAX_SAMPLES = 1 << 28

_CODECS = {("flac", 16): "flac", ("flac", 24): "flac", ("wav", 16): "pcm_s16le", ("wav", 24): "pcm_s24le"}
# Channel count -> the FFmpeg layout FLAC and WAV both accept for it.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_AV_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError, IndexError)


def encode_audio(audio: dict[str, Any], *, fmt: AudioFormat = "flac", bits: int = 16) -> list[bytes]:
    """One audio file (FLAC or WAV, 16- or 24-bit PCM) per batch item of an AUDIO value."""
    codec = _CODECS.get((fmt, bits))
    if codec is None:
        raise MediaEncodeError(f"Audio format must be flac or wav with 16 or 24 bits; got {fmt!r}, {bits} bits.")
    waveform, rate = _validate(audio)
    out = [_encode_one(item, rate, fmt, codec, bits) for item in waveform]
    log.debug("encoded %d %s file(s), %d bytes in all", len(out), fmt, sum(map(len, out)))
    return out


def decode_audio(data: bytes, *, label: str = "audio", max_samples: int = DEFAULT_MAX_SAMPLES) -> dict[str, Any]:
    """Downloaded audio (or video-with-sound) bytes -> AUDIO {"waveform": [1,C,T], "sample_rate"}."""
    kind = expect_kind(data, {"AUDIO", "VIDEO"}, label=label)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise MediaDecodeError(label, f"the {kind.name} file has no audio stream",
                                       "Connect a video output to a VIDEO input instead.")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or 0)
            # Packed float: one plane whatever the channel count (PyAV's planar to_ndarray
            # crashes on 8-channel frames).
            resampler = av.AudioResampler(format="flt")  # keep layout and rate
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = _planar(out)
                    total += arr.size
                    if total > max_samples:
                        raise MediaTooLargeError(
                            label,
                            f"it decodes to more than {max_samples:,} samples (cap against hostile files)",
                            "If the audio is genuine, raise max_samples or fetch a shorter clip.",
                        )
                    chunks.append(arr)
            for out in resampler.resample(None):
                chunks.append(_planar(out))
    except MediaDecodeError:
        raise
    except _AV_ERRORS as exc:
        raise MediaDecodeError(label, f"the {kind.name} data is corrupt or truncated ({exc})") from exc
    chunks = [c for c in chunks if c.shape[-1]]
    if not chunks or rate <= 0:
        raise MediaDecodeError(label, f"the {kind.name} file contains no audio samples")
    channels = {c.shape[0] for c in chunks}
    if len(channels) != 1:
        raise MediaDecodeError(label, f"its channel count changes mid-stream ({sorted(channels)})")
    waveform = torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32, copy=False))
    return {"waveform": waveform.unsqueeze(0), "sample_rate": rate}


def _planar(frame: av.AudioFrame) -> np.ndarray:
    """[C, n] float32 from a packed 'flt' frame."""
    channels = frame.layout.nb_channels
    return frame.to_ndarray().reshape(-1, channels).T


def _validate(audio: Any) -> tuple[torch.Tensor, int]:
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise MediaEncodeError("AUDIO must be a dict with 'waveform' and 'sample_rate' (ComfyUI's AUDIO type).")
    waveform, rate = audio["waveform"], audio["sample_rate"]
    if not isinstance(waveform, torch.Tensor):
        raise MediaEncodeError(f"AUDIO waveform must be a torch tensor, got {type(waveform).__name__}")
    if waveform.ndim == 2:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 3 or not 1 <= waveform.shape[1] <= 8:
        raise MediaEncodeError(
            f"AUDIO waveform must be [batch, channels (1-8), samples]; got {tuple(waveform.shape)}."
        )
    if waveform.shape[0] == 0 or waveform.shape[2] == 0:
        raise MediaEncodeError(f"AUDIO is empty (waveform {tuple(waveform.shape)}); nothing to upload.")
    try:
        rate = int(rate)
    except (TypeError, ValueError):
        raise MediaEncodeError(f"AUDIO sample_rate must be an integer, got {rate!r}") from None
    if not 1 <= rate <= 655_350:
        raise MediaEncodeError(f"AUDIO sample_rate {rate} Hz is outside 1..655350 Hz.")
    return waveform.detach().to("cpu", torch.float32), rate


def _encode_one(waveform: torch.Tensor, rate: int, fmt: str, codec: str, bits: int) -> bytes:
    channels, _ = waveform.shape
    scale = float(1 << (bits - 1))
    q = torch.nan_to_num(waveform, nan=0.0, posinf=1.0, neginf=-1.0).mul(scale).round_()
    q.clamp_(-scale, scale - 1)
    if bits == 16:
        samples, sample_fmt = q.to(torch.int16), "s16"
    else:  # 24-bit rides in the top bits of s32, as FFmpeg's encoders expect
        samples, sample_fmt = q.to(torch.int32).mul_(256), "s32"
    interleaved = samples.t().contiguous().reshape(1, -1).numpy()
    layout = _LAYOUTS[channels]
    buf = io.BytesIO()
    try:
        with av.open(buf, mode="w", format=fmt) as container:
            stream = container.add_stream(codec, rate=rate, layout=layout)
            stream.format = sample_fmt
            if bits == 24 and hasattr(stream.codec_context, "bits_per_raw_sample"):
                stream.codec_context.bits_per_raw_sample = 24
            frame = av.AudioFrame.from_ndarray(interleaved, format=sample_fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except _AV_ERRORS as exc:
        raise MediaEncodeError(f"Could not encode {channels}-channel {rate} Hz audio as {fmt}: {exc}") from exc
    return buf.getvalue()
