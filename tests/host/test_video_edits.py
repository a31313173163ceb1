"""host.comfy.video_has_edits decides whether RH Upload may send a VIDEO's file as it is.

The trim window is tested end to end on ComfyUI 0.33.0 (tests/e2e, Trim Video). Pending frame
edits exist only in newer ComfyUI (0.38: `has_pending_frame_edits()`), which cannot run here,
so these small stand-ins carry exactly the methods each version's VIDEO values have."""

from __future__ import annotations

import pytest

from support.pack import pack_module


class Video0375:
    """ComfyUI 0.3.75: neither a trim window nor edits."""

    def get_stream_source(self):
        return "clip.mp4"


class Video033(Video0375):
    """ComfyUI 0.33: a trim window (start, duration); (0, 0) keeps the whole file."""

    def __init__(self, start=0.0, duration=0.0):
        self.window = (start, duration)

    def get_active_trim_window(self):
        return self.window


class Video038(Video033):
    """ComfyUI 0.38: also pending frame edits (crops and the like)."""

    def __init__(self, start=0.0, duration=0.0, pending=False):
        super().__init__(start, duration)
        self.pending = pending

    def has_pending_frame_edits(self):
        return self.pending


@pytest.mark.parametrize(("video", "edited"), [
    (Video0375(), False),
    (Video033(), False),
    (Video033(0.25, 0.0), True),
    (Video033(0.0, 1.5), True),
    (Video038(), False),
    (Video038(pending=True), True),
    (Video038(0.5, 0.0), True),
])
def test_video_has_edits(video, edited):
    assert pack_module("host.comfy").video_has_edits(video) is edited
