"""RH Upload: a local IMAGE (with optional MASK as alpha), AUDIO or VIDEO → uploaded file
names that a remote LoadImage / LoadAudio / LoadVideo field takes."""

from __future__ import annotations

import asyncio

from comfy_api.latest import io

from ..client.errors import WaitInterrupted
from ..host import accounts, comfy
from ..remote.uploads import PendingUpload, upload_all
from .sockets import CATEGORY, account_input
from .sweep import NodeStop


def _pending_uploads(image, mask, audio, video) -> list[PendingUpload]:
    """Encode exactly one of image / audio / video into files RunningHub accepts."""
    from ..media.limits import check_upload_size

    given = [name for name, v in (("image", image), ("audio", audio), ("video", video)) if v is not None]
    if len(given) != 1:
        raise ValueError("RH Upload: connect exactly one of image, audio or video "
                         f"(connected: {', '.join(given) or 'none'}). Use one RH Upload node per file kind.")
    if mask is not None and image is None:
        raise ValueError("RH Upload: a mask rides along as the image's alpha; connect an image too.")
    items: list[PendingUpload] = []
    if image is not None:
        from ..media.image_encode import encode_png_batch

        blobs = encode_png_batch(image, mask)
        for i, data in enumerate(blobs):
            check_upload_size(data, kind="image", label=f"RH Upload: image {i + 1} of {len(blobs)}")
            items.append(PendingUpload(data, f"image_{i + 1:05d}.png", "image", "image/png"))
    elif audio is not None:
        from ..media.audio import encode_audio

        blobs = encode_audio(audio)  # FLAC: lossless, about half the size of WAV
        for i, data in enumerate(blobs):
            check_upload_size(data, kind="audio", label=f"RH Upload: audio {i + 1} of {len(blobs)}")
            items.append(PendingUpload(data, f"audio_{i + 1:05d}.flac", "audio", "audio/flac"))
    else:
        from ..media.sniff import sniff

        data = comfy.video_file_bytes(video)
        check_upload_size(data, kind="video", label="RH Upload: video")
        kind = sniff(data, label="RH Upload: video")
        items.append(PendingUpload(data, f"video.{kind.extension}", "video", kind.mime))
    return items


class RHUpload(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RHUpload",
            display_name="RH Upload",
            category=CATEGORY,
            description=("Uploads a local image (a mask rides along as its alpha), audio or video to RunningHub "
                         "and outputs the file name a remote Load Image / Load Audio / Load Video field takes. "
                         "An image batch uploads one file per image and outputs a list, so the nodes after it "
                         "run once per image."),
            inputs=[
                io.Image.Input("image", optional=True, tooltip="Image (or batch) to upload as PNG."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional mask sent as the PNG's alpha; the remote Load Image turns it "
                                      "back into the same mask."),
                io.Audio.Input("audio", optional=True, tooltip="Audio to upload (sent as FLAC, lossless)."),
                io.Video.Input("video", optional=True,
                               tooltip="Video to upload (sent as is when it already is an MP4/MOV/MKV/AVI file)."),
                account_input(),
            ],
            outputs=[io.String.Output("file_name", display_name="file_name", is_output_list=True,
                                      tooltip="Uploaded file name(s), e.g. api/<sha256>.png: wire into RH Node "
                                              "Override's value for the remote Load node's field.")],
        )

    @classmethod
    async def execute(cls, image=None, mask=None, audio=None, video=None, account: str = "default") -> io.NodeOutput:
        items = await asyncio.to_thread(_pending_uploads, image, mask, audio, video)
        client = accounts.client_for(accounts.account_for(account))
        try:
            names = await NodeStop(comfy.executing_context()[0]).run("RH Upload", upload_all, client, items)
        except WaitInterrupted:
            comfy.raise_interrupt()
            raise
        return io.NodeOutput(names)
