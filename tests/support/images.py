"""PNG bytes of a uint8 pixel array (H×W, H×W×3 or H×W×4), for tests that upload images."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png_bytes(pixels: np.ndarray, **save_kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **save_kw)
    return buf.getvalue()
