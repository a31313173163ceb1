"""Float (ComfyUI, 0..1) <-> uint8 pixel conversion, on whole tensors at once.

`to_uint8` rounds (not truncates), so uint8 -> float (v / 255, as ComfyUI's LoadImage does)
-> uint8 gives back exactly the same values. NaN becomes 0; values are clamped to 0..1.
"""

from __future__ import annotations

import torch


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """A uint8 CPU tensor of round(clamp(values, 0, 1) * 255), same shape."""
    if values.dtype == torch.uint8:
        return values.cpu()
    scaled = torch.mul(values.detach().to("cpu", torch.float32), 255.0)  # one new buffer
    torch.nan_to_num_(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return scaled.clamp_(0.0, 255.0).round_().to(torch.uint8)


def uint8_into_float_(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Write uint8 `src` into float32 `dst` as src / 255 (ComfyUI's LoadImage values), in place."""
    dst.copy_(src)
    return dst.div_(255.0)
