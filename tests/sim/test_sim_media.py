"""Uploads and output files: real bytes in, real pixels/samples/frames out."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile

import av
import numpy as np
import pytest
import requests
from PIL import Image

from support.simulator import SAMPLE_INPUTS, WORKFLOWS


def png_bytes(array: np.ndarray, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def mp4_bytes(frames: list[np.ndarray], fps: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def decode_frames(data: bytes) -> tuple[list[np.ndarray], float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], float(stream.average_rate)


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray() for f in container.decode(stream)]
        return np.concatenate(chunks, axis=-1), stream.rate


def check_file_reply(reply: requests.Response, content_type: str) -> bytes:
    assert reply.headers["Content-Type"].startswith(content_type)
    assert int(reply.headers["Content-Length"]) == len(reply.content)
    return reply.content


RNG = np.random.default_rng(1234)


def test_upload_png_and_invert_round_trip(api):
    pixels = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = png_bytes(pixels)
    reply = api.upload(data, "photo.png", "image")
    assert reply["code"] == 0
    assert reply["data"] == {"fileName": f"api/{hashlib.sha256(data).hexdigest()}.png", "fileType": "image"}
    result = api.run("invert", [("1", "image", reply["data"]["fileName"])])
    (item,) = result["data"]
    assert item["fileType"] == "png" and item["nodeId"] == "3"
    content = check_file_reply(api.download(item["fileUrl"]), "image/png")
    out = np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))
    assert out.shape == pixels.shape
    assert np.array_equal(out, 255 - pixels)


def test_upload_file_type_input_and_same_name_for_same_bytes(api):
    data = png_bytes(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    one = api.upload(data, "a.png", "input")
    two = api.upload(data, "b.PNG", "image")
    assert one["data"]["fileType"] == "input"
    assert one["data"]["fileName"] == two["data"]["fileName"]
    for label in ("lora", "latent", "file"):  # labels public clients send: echoed, the file judged by itself
        reply = api.upload(data, "c.png", label)
        assert reply["code"] == 0 and reply["data"] == {"fileName": one["data"]["fileName"], "fileType": label}


def test_a_zip_of_images_is_named_by_its_bare_hash(api, sim):
    """The API docs' ZIP upload (an image batch) answers the file's sha256 alone, no folder
    and no extension, on v1 and v2; the name then finds the file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("a.png", png_bytes(np.zeros((2, 2, 3), np.uint8)))
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    assert api.upload(data, "batch.zip", "image")["data"] == {"fileName": digest, "fileType": "image"}
    v2 = requests.post(sim.base_url + "/openapi/v2/media/upload/binary", timeout=10,
                       headers={"Authorization": f"Bearer {sim.keys[0]}"}, files={"file": ("batch.zip", data)}).json()
    assert v2["data"]["fileName"] == digest and requests.get(v2["data"]["download_url"], timeout=10).content == data


def test_saved_png_carries_the_prompt_unless_add_metadata_false(api):
    with_meta = api.run("empty")["data"][0]["fileUrl"]
    assert "prompt" in Image.open(io.BytesIO(api.download(with_meta).content)).info
    without = api.run("empty", addMetadata=False)["data"][0]["fileUrl"]
    assert "prompt" not in Image.open(io.BytesIO(api.download(without).content)).info


def test_mask_is_one_minus_alpha(api):
    alpha = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    rgba = np.dstack([np.full((8, 16, 3), 100, np.uint8), alpha])
    name = api.upload(png_bytes(rgba, "RGBA"), "alpha.png")["data"]["fileName"]
    (item,) = api.run("mask", [("1", "image", name)])["data"]
    mask = np.asarray(Image.open(io.BytesIO(api.download(item["fileUrl"]).content)).convert("L"))
    assert np.array_equal(mask, 255 - alpha)


def test_mask_without_alpha_is_64x64_zeros(api):
    name = api.upload(png_bytes(np.zeros((10, 10, 3), np.uint8)), "flat.png")["data"]["fileName"]
    (item,) = api.run("mask", [("1", "image", name)])["data"]
    mask = np.asarray(Image.open(io.BytesIO(api.download(item["fileUrl"]).content)).convert("L"))
    assert mask.shape == (64, 64) and not mask.any()


def test_scale_nodes_give_the_right_sizes(api):
    name = api.upload(png_bytes(RNG.integers(0, 256, (10, 16, 3), dtype=np.uint8)), "s.png")["data"]["fileName"]
    items = api.run("scale", [("1", "image", name)])["data"]
    sizes = {i["nodeId"]: Image.open(io.BytesIO(api.download(i["fileUrl"]).content)).size for i in items}
    assert sizes == {"3": (32, 20), "5": (24, 15)}


def test_empty_image_batch_and_color(api):
    items = api.run("empty")["data"]
    assert [i["nodeId"] for i in items] == ["2", "2"]
    assert len({i["fileUrl"] for i in items}) == 2
    for item in items:
        img = np.asarray(Image.open(io.BytesIO(api.download(item["fileUrl"]).content)))
        assert img.shape == (48, 64, 3)
        assert (img == [255, 128, 0]).all()


def test_seed_changes_the_noise(api):
    def noise(seed):
        (item,) = api.run("noise", [("1", "seed", seed)], addMetadata=False)["data"]
        return np.asarray(Image.open(io.BytesIO(api.download(item["fileUrl"]).content)))

    a, b, c = noise(1), noise(1), noise(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_audio_round_trip_is_lossless(api):
    rate = 22050
    samples = (RNG.standard_normal(rate // 5) * 3000).astype(np.int16)
    reply = api.upload(wav_bytes(samples, rate), "voice.wav", "audio")
    assert reply["data"]["fileName"].endswith(".wav")
    (item,) = api.run("audio", [("1", "audio", reply["data"]["fileName"])])["data"]
    assert item["fileType"] == "flac"
    assert re.fullmatch(r"roundtrip_\d{5}_\.flac", item["fileUrl"].rsplit("/", 1)[-1])
    decoded, out_rate = decode_audio(check_file_reply(api.download(item["fileUrl"]), "audio/flac"))
    assert out_rate == rate
    assert np.array_equal(decoded.reshape(-1)[: len(samples)], samples)


@pytest.mark.parametrize("node, ext, content_type", [
    ({"class_type": "SaveAudio", "inputs": {"format": "wav"}}, "wav", "audio/wav"),
    ({"class_type": "SaveAudioMP3", "inputs": {"quality": "128k"}}, "mp3", "audio/mpeg"),
])
def test_other_audio_formats(api, node, ext, content_type):
    graph = json.loads(api.call("getJsonApiFormat", {"apiKey": api.key, "workflowId": WORKFLOWS["audio"]})
                       ["data"]["prompt"])
    graph["2"]["class_type"] = node["class_type"]
    graph["2"]["inputs"].update(node["inputs"])
    (item,) = api.run("audio", workflow=json.dumps(graph))["data"]
    assert item["fileType"] == ext
    samples, rate = decode_audio(check_file_reply(api.download(item["fileUrl"]), content_type))
    assert rate == 16000 and samples.shape[-1] >= 4000


def test_video_round_trip(api):
    frames = [np.full((32, 48, 3), v, np.uint8) for v in (20, 120, 220, 60)]
    reply = api.upload(mp4_bytes(frames, 10), "clip.mp4", "video")
    assert reply["data"]["fileName"].endswith(".mp4")
    (item,) = api.run("video", [("1", "file", reply["data"]["fileName"])])["data"]
    assert item["fileType"] == "mp4"
    out_frames, fps = decode_frames(check_file_reply(api.download(item["fileUrl"]), "video/mp4"))
    assert len(out_frames) == 4 and fps == pytest.approx(10)
    for got, want in zip(out_frames, frames):
        assert got.shape == want.shape
        assert abs(float(got.mean()) - float(want.mean())) < 6


def test_text_output(api):
    (item,) = api.run("text", [("1", "value", "Grüße, 世界")])["data"]
    assert item["fileType"] == "txt"
    content = check_file_reply(api.download(item["fileUrl"]), "text/plain")
    assert content.decode("utf-8") == "Grüße, 世界"


def test_mixed_outputs(api):
    items = api.run("mixed")["data"]
    assert [(i["nodeId"], i["fileType"]) for i in items] == [
        ("2", "png"), ("4", "png"), ("4", "png"), ("7", "mp4"), ("9", "flac"), ("10", "txt")]
    square = Image.open(io.BytesIO(api.download(items[0]["fileUrl"]).content))
    noise = Image.open(io.BytesIO(api.download(items[1]["fileUrl"]).content))
    assert square.size == (64, 64) and noise.size == (32, 16)
    frames, fps = decode_frames(api.download(items[3]["fileUrl"]).content)
    assert len(frames) == 6 and frames[0].shape == (16, 16, 3) and fps == pytest.approx(8)
    samples, rate = decode_audio(api.download(items[4]["fileUrl"]).content)
    assert rate == 16000 and samples.shape[-1] == 4000
    assert api.download(items[5]["fileUrl"]).text == "mixed outputs"


def test_output_urls_head_and_unknown(api):
    (item,) = api.run("noise")["data"]
    head = requests.head(item["fileUrl"], timeout=5)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0
    token_url = item["fileUrl"].rsplit("/", 2)[0] + "/" + "0" * 32 + "/x.png"
    assert requests.get(token_url, timeout=5).status_code == 404


def test_upload_over_the_limit_809(api, sim):
    sim.configure(max_upload_mb=0.05)
    reply = api.upload(b"\x89PNG" + bytes(60_000), "big.png")
    assert reply["code"] == 809 and reply["msg"] == "APIKEY_FILE_SIZE_EXCEEDED"  # the bare constant
    drained = api.upload(b"\x89PNG" + bytes(1_200_000), "huge.png")
    assert drained["code"] == 809
    assert api.upload(b"\x89PNG" + bytes(1000), "ok.png")["code"] == 0


def test_upload_default_limit_is_30_mb(api, sim):
    assert sim.config()["settings"]["max_upload_mb"] == 30


def test_upload_errors(api, sim):
    data = png_bytes(np.zeros((2, 2, 3), np.uint8))
    assert api.upload(data, "x.txt")["code"] == 301
    assert api.upload(data, "x.png", key="0" * 32)["code"] == 802
    no_type = api.call("upload", None, files={"file": ("x.png", io.BytesIO(data))}, data={"apiKey": api.key})
    assert no_type["code"] == 0 and no_type["data"]["fileType"] == "image"  # public clients send none
    any_label = api.upload(data, "x.png", "picture")  # fileType is a label: see test_upload_file_type_input...
    assert any_label["code"] == 0 and any_label["data"]["fileType"] == "picture"
    no_file = api.call("upload", None, files={"other": ("x.png", io.BytesIO(data))},
                       data={"apiKey": api.key, "fileType": "image"})
    assert no_file["code"] == 301


def test_sample_inputs_exist_for_default_values(api):
    assert {p.name for p in SAMPLE_INPUTS.iterdir()} >= {"example.png", "example.wav", "example.mp4"}
    items = api.run("invert")["data"]
    out = np.asarray(Image.open(io.BytesIO(api.download(items[0]["fileUrl"]).content)).convert("RGB"))
    src = np.asarray(Image.open(SAMPLE_INPUTS / "example.png").convert("RGB"))
    assert np.array_equal(out, 255 - src)
