"""PNG encode settings for uploads: time and size per zlib compress level.

Run: `$VENV/bin/python bench/png_encode.py [--size 1024] [--repeat 3]`

The test image is photo-like rather than flat colour (flat images compress at every level
and hide the trade-off): smooth gradients and low-frequency shapes, plus per-pixel sensor
noise of a few levels. The script prints, per level, the best-of-N encode time, the PNG
size, and the total time to get the bytes onto the wire (encode + send) at three link
speeds. It never passes or fails; media/image_encode.py records the numbers it chose from.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

# Bytes per second of the links an upload may take.
LINKS = {
    "loopback": 1_000_000_000,  # simulator / same host, ~1 GB/s
    "100Mbit": 100_000_000 / 8,  # good office / fibre uplink
    "20Mbit": 20_000_000 / 8,  # typical home uplink
}


def photo_like(size: int, seed: int = 0) -> np.ndarray:
    """A size×size RGB uint8 image with smooth structure and mild noise, like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    channels = []
    for c in range(3):
        base = 0.45 + 0.25 * np.sin(2 * np.pi * (x * (1.3 + c * 0.4) + y * 0.7) + c)
        base += 0.15 * np.cos(2 * np.pi * (x * x * 2.1 - y * (1.7 - c * 0.3)))
        # A few soft blobs: objects with edges softened by a gaussian profile.
        for _ in range(6):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
            base += rng.uniform(-0.25, 0.25) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        channels.append(base)
    img = np.stack(channels, axis=-1) * 255.0
    img += rng.normal(0.0, 3.0, img.shape)  # sensor noise, sigma 3 levels
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def encode(img: Image.Image, level: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=level, optimize=False)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    img = Image.fromarray(photo_like(args.size))
    raw = args.size * args.size * 3
    header = f"{'level':>5} {'encode ms':>10} {'size KB':>9} {'ratio':>6}" + "".join(
        f" {'total ms @' + name:>18}" for name in LINKS
    )
    print(f"PNG encode of a {args.size}x{args.size} photo-like RGB image ({raw / 1e6:.1f} MB raw)")
    print(header)
    for level in range(10):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            data = encode(img, level)
            best = min(best, time.perf_counter() - t0)
        totals = "".join(f" {1000 * (best + len(data) / bps):>18.0f}" for bps in LINKS.values())
        print(f"{level:>5} {1000 * best:>10.1f} {len(data) / 1024:>9.0f} {len(data) / raw:>6.2f}{totals}")


if __name__ == "__main__":
    main()
