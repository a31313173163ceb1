"""Real media files made on the spot with Pillow, PyAV and zlib, for the media tests."""

from __future__ import annotations

import io
import math
import struct
import zlib

import av
import numpy as np
import torch
from PIL import Image


def pil_bytes(img: Image.Image, fmt: str, **save_kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kw)
    return buf.getvalue()


def rgb_array(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth_array(h: int, w: int, phase: float = 0.0) -> np.ndarray:
    """Gradients: survive lossy codecs with small error, unlike noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 100 * np.sin(x / w * 2 * math.pi + phase)
    g = 127 + 100 * np.cos(y / h * 2 * math.pi + phase)
    b = (x + y) / (w + h) * 255
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def as_image(arr: np.ndarray) -> torch.Tensor:
    """uint8 [B,H,W,C] or [H,W,C] -> ComfyUI IMAGE, exactly as LoadImage computes it."""
    t = torch.from_numpy(arr.astype(np.float32) / 255.0)
    return t if t.ndim == 4 else t[None]


def raw_png(width: int, height: int, bit_depth: int, color_type: int, pixel_bytes: bytes | None = None) -> bytes:
    """A PNG written by hand (16-bit RGB, or a header that lies about its size)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(pixel_bytes if pixel_bytes is not None else b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sine(rate: int, seconds: float, channels: int = 1, freq: float = 440.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    chans = [amp * torch.sin(2 * math.pi * freq * (c + 1) * t) for c in range(channels)]
    return torch.stack(chans).float()


def av_audio_file(fmt: str, codec: str, wave: torch.Tensor, rate: int) -> bytes:
    """An audio file written with PyAV directly (independent of media.audio)."""
    layout = "mono" if wave.shape[0] == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(wave.numpy().astype(np.float32), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return buf.getvalue()


def av_video_file(fmt: str, codec: str, n: int = 10, w: int = 64, h: int = 48, fps: int = 10, pix_fmt: str = "yuv420p") -> bytes:
    """A small video written with PyAV directly (independent of media.video)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(smooth_array(h, w, phase=i / 3), format="rgb24")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return buf.getvalue()
