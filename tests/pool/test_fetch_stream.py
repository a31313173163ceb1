"""The fetch path that decodes images as their downloads finish (remote/fetch.py, through
media/image_batch.py; shaped by the fetch_decode benchmark): the batch it builds must be
exactly what `decode_images` builds from the same files, masks included, whatever order
the downloads finish in. The files are real PNGs served over HTTP by the simulator (its
v2 upload gives each a download URL)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from support.clients import make_client
from support.pack import pack_module
from support.images import png_bytes as png

fetch = pack_module("remote.fetch")
records = pack_module("client.records")
images = pack_module("media.images")


def served(sim, data: bytes, name: str) -> str:
    reply = requests.post(sim.base_url + "/openapi/v2/media/upload/binary", timeout=10,
                          headers={"Authorization": f"Bearer {sim.keys[0]}"},
                          files={"file": (name, data, "image/png")}).json()
    return reply["data"]["download_url"]


def result_of(urls: list[str]):
    outputs = [records.TaskOutput(url=u, file_type="png", node_id=str(9 + i)) for i, u in enumerate(urls)]
    return records.TaskResult("1990000000000000001", outputs, records.TaskCost())


@pytest.fixture
def fetch_into(tmp_path, sim):
    client = make_client(sim)

    def run(blobs: list[bytes], policy: str = "pad"):
        urls = [served(sim, b, f"out{i}.png") for i, b in enumerate(blobs)]
        names = iter(range(10_000))
        got = fetch.fetch_outputs(client, "1990000000000000001", result_of(urls), size_policy=policy,
                                  new_temp_file=lambda suffix: str(tmp_path / f"f{next(names)}{suffix}"))
        expected = images.decode_images(blobs, policy=policy)
        return got, expected

    return run


@pytest.mark.parametrize("link", ["slow", "fast"])
def test_same_size_images_stream_into_the_exact_batch_masks_included(fetch_into, monkeypatch, link):
    # A slow link decodes as downloads finish, a fast one after them: the same batch either way.
    monkeypatch.setattr(fetch, "FAST_LINK", float("inf") if link == "slow" else 0.0)
    rng = np.random.default_rng(5)
    blobs = []
    for i in range(7):
        rgba = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
        if i % 3:
            blobs.append(png(rgba[..., :3]))  # opaque: an all-zero mask
        else:
            blobs.append(png(rgba))  # alpha: mask = 1 - alpha / 255
    got, expected = fetch_into(blobs)
    assert torch.equal(got.images.image, expected.image)
    assert torch.equal(got.images.mask, expected.mask)
    assert float(got.images.mask[0].max()) > 0 and float(got.images.mask[1].abs().max()) == 0
    assert [it.data for it in got.image_files] == blobs  # kept for the preview, unchanged


def test_large_metadata_ahead_of_the_pixels_changes_nothing(fetch_into):
    """ComfyUI writes the whole workflow into a PNG's text chunks, ahead of the pixels."""
    from PIL.PngImagePlugin import PngInfo

    rng = np.random.default_rng(7)
    blobs = []
    for i in range(3):
        info = PngInfo()
        info.add_text("workflow", "x" * (300_000 + 1000 * i))
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (12, 10, 4), dtype=np.uint8)).save(buf, format="PNG", pnginfo=info)
        blobs.append(buf.getvalue())
    got, expected = fetch_into(blobs)
    assert got.images.image.shape == (3, 12, 10, 3)
    assert torch.equal(got.images.image, expected.image) and torch.equal(got.images.mask, expected.mask)


def test_images_of_different_sizes_follow_the_size_policy(fetch_into):
    rng = np.random.default_rng(6)
    blobs = [png(rng.integers(0, 256, shape, dtype=np.uint8)) for shape in ((16, 16, 3), (20, 12, 4), (16, 16, 3))]
    for policy in ("pad", "fit", "stretch"):
        got, expected = fetch_into(blobs, policy)
        assert torch.equal(got.images.image, expected.image) and torch.equal(got.images.mask, expected.mask)


def test_a_file_that_is_not_an_image_names_the_task_and_the_node(fetch_into):
    good = png(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(fetch.OutputDecodeError, match="1990000000000000001") as info:
        fetch_into([good, b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, good])
    assert "remote node 10" in str(info.value)
