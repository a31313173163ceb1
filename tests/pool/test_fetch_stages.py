"""The fetch's classify and decode stages (remote/fetch_classify.py, remote/fetch_decode.py)
on real files, without a server: a downloaded video is passed on as its file, never read
back into memory; images go through media.image_batch."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from support.pack import pack_module

classify = pack_module("remote.fetch_classify")
download = pack_module("remote.fetch_download")
decode = pack_module("remote.fetch_decode")
records = pack_module("client.records")
images = pack_module("media.images")
video = pack_module("media.video")

TASK = "1990000000000000002"


def downloaded(file_type: str, node_id: str, *, data: bytes = b"", path=None):
    output = records.TaskOutput(url=f"https://cdn.example/{node_id}.{file_type}", file_type=file_type,
                                node_id=node_id)
    return download.Downloaded(classify.OutputFile(output, classify.kind_of(output)), data=data,
                               path=None if path is None else str(path))


def decode_stage(items, size_policy="pad"):
    """The decode stage as fetch_outputs runs it: each item as it arrives, then finish."""
    found = classify.Classified(files=[it.file for it in items])
    with decode.OutputDecoder(TASK, found, items, size_policy=size_policy) as decoder:
        for it in reversed(items):  # downloads finish in any order
            decoder.arrived(it, decode_now=True)
        return decoder.finish()


def noise_mp4(path, frames: int = 24) -> bytes:
    data = video.encode_mp4(torch.rand(frames, 240, 320, 3, generator=torch.Generator().manual_seed(4)), 12)
    path.write_bytes(data)
    return data


def test_the_decode_stage_passes_a_video_on_as_its_file_without_reading_it(tmp_path):
    path = tmp_path / "out.mp4"
    written = noise_mp4(path)  # about 1.2 MB: noise does not compress
    item = downloaded("mp4", "7", path=path)
    del written
    tracemalloc.start()
    try:
        fetched = decode_stage([item])
        _, peak = tracemalloc.get_traced_memory()  # reading the file back would allocate its size
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert peak < size / 4, f"{peak} bytes allocated to decode a {size}-byte video"
    assert fetched.videos == [item] and fetched.videos[0].path == str(path) and item.data == b""
    assert video.probe_video_file(fetched.videos[0].path).frame_count == 24  # the file, intact
    assert fetched.summary() == f"task {TASK}: 1 video(s)"


def test_a_video_file_that_does_not_play_names_the_task_node_and_url(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(noise_mp4(path)[:3000])
    with pytest.raises(classify.OutputDecodeError, match=TASK) as info:
        decode_stage([downloaded("mp4", "7", path=path)])
    assert "remote node 7" in str(info.value) and "https://cdn.example/7.mp4" in str(info.value)


def test_images_of_the_decode_stage_are_the_one_image_decode_path(tmp_path):
    rng = np.random.default_rng(8)
    blobs = []
    for shape in ((16, 24, 4), (16, 24, 3), (20, 12, 3)):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    items = [downloaded("png", str(n), data=b) for n, b in enumerate(blobs)]
    text = downloaded("txt", "9", data="näive".encode())
    for policy in ("pad", "fit", "stretch"):
        fetched = decode_stage([items[0], text, items[1], items[2]], size_policy=policy)
        expected = images.decode_images(blobs, policy=policy)
        assert torch.equal(fetched.images.image, expected.image) and torch.equal(fetched.images.mask, expected.mask)
        assert fetched.image_files == items and fetched.texts == ["näive"]


def test_classify_lists_every_output_and_refuses_one_without_a_url_before_any_download():
    outputs = [records.TaskOutput(url="https://cdn.example/a.png", file_type="png", node_id="3"),
               records.TaskOutput(url="https://cdn.example/m.glb", file_type="glb", node_id="4"),
               records.TaskOutput(url=None, file_type="txt", node_id="5", text="inline")]
    found = classify.classify(TASK, outputs)
    assert [(f.kind, f.output.node_id) for f in found.files] == [("image", "3"), ("text", "5")]
    assert found.skipped == ["https://cdn.example/m.glb"] and len(found.listing) == 3
    with pytest.raises(classify.OutputDecodeError, match=f"remote node 6 without a URL \\(task {TASK}\\)"):
        classify.classify(TASK, outputs + [records.TaskOutput(url=None, file_type="mp4", node_id="6")])
