"""The four nodes inside a real ComfyUI, against the simulator, driven as a front end would."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from support.clients import make_client
from support.graphs import run_fetch, two_image_batch_run_fetch, upload_run_fetch
from support.pack import pack_module
from support.simulator import WORKFLOWS, Simulator
from support.images import png_bytes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(sim, comfy_host_factory):
    return comfy_host_factory(env=sim.pack_env())


@pytest.fixture(autouse=True)
def _fresh_each_test(fresh):
    """Every test starts from the simulator's start state on an idle ComfyUI."""


def saved_pixels(host, result, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.view_bytes(i["filename"], i["subfolder"], i["type"]))))
            for i in result.images(node_id)]


def local_image(host, seed: int, size=(24, 16)) -> tuple[str, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    name = host.upload_image(png_bytes(pixels), f"local-{seed}.png")["name"]
    return name, pixels


def test_chain_returns_exactly_the_remote_pixels(host, sim):
    name, pixels = local_image(host, 1)
    result = host.run(upload_run_fetch(name, WORKFLOWS["invert"]), timeout=120)
    assert result.status == "success", result.error
    [out] = saved_pixels(host, result, "15")
    assert np.array_equal(out[:, :, :3], 255 - pixels)
    assert sim.count("create") == 1 and sim.count("upload") == 1
    [task] = sim.tasks()
    assert task["overrides"][0]["nodeId"] == "1" and task["overrides"][0]["fieldName"] == "image"
    texts = result.progress_texts("13")
    assert any("queued" in t or "running" in t for t in texts) and "done" in texts[-1]
    statuses = [e.data for e in result.events_of("runninghub.status") if e.data["node"] == "13"]
    assert statuses[-1]["state"] == "SUCCESS" and statuses[-1]["task_id"] == task["taskId"]


def test_requeue_is_cached_and_a_new_seed_runs_again(host, sim):
    name, _ = local_image(host, 2)
    graph = upload_run_fetch(name, WORKFLOWS["invert"], seed=5)
    assert host.run(graph, timeout=120).status == "success"
    assert host.run(graph, timeout=120).status == "success"
    assert sim.count("create") == 1 and sim.count("upload") == 1
    graph["13"]["inputs"]["seed"] = 6
    assert host.run(graph, timeout=120).status == "success"
    assert sim.count("create") == 2 and sim.count("upload") == 1  # the same image is not sent again


def test_two_run_nodes_overlap_in_time(host, sim):
    sim.configure(run_seconds=1.5)
    graph = {**run_fetch(WORKFLOWS["noise"], prefix="a", save_prefix="a"),
             **run_fetch(WORKFLOWS["empty"], prefix="b", save_prefix="b")}
    result = host.run(graph, timeout=120)
    assert result.status == "success", result.error
    a, b = sorted(sim.tasks(), key=lambda t: t["created"])
    assert b["created"] < a["finished"], "the second task was only created after the first ended"
    assert result.duration < 1.5 * 2 + 2


def test_interrupt_cancels_the_remote_task(host, sim):
    sim.configure(run_seconds=60)
    interrupted_at = []

    def on_event(event):
        if event.type == "runninghub.status" and event.data.get("state") == "RUNNING" and not interrupted_at:
            interrupted_at.append(time.monotonic())
            threading.Thread(target=host.interrupt, daemon=True).start()

    result = host.run(run_fetch(WORKFLOWS["empty"]), timeout=60, on_event=on_event)
    assert interrupted_at, [(e.type, str(e.data)[:200]) for e in result.events]
    assert result.status == "interrupted"
    assert result.finished - interrupted_at[0] < 2.0
    assert sim.count("cancel") == 1
    [task] = sim.tasks()
    assert task["cancelled"] is True


def test_remote_failure_names_the_remote_node(host, sim):
    result = host.run(run_fetch(WORKFLOWS["fail"]), timeout=60)
    assert result.status == "error"
    error = result.error
    assert error["node_id"] == "13"
    assert "remote node 2 (SimFail)" in error["exception_message"]
    assert sim.tasks()[0]["taskId"] in error["exception_message"]


def test_bad_override_fails_before_any_billed_call(host, sim):
    graph = run_fetch(WORKFLOWS["invert"], overrides=["12", 0])
    graph["12"] = {"class_type": "RHNodeOverride", "inputs": {"node_id": "99", "field_name": "image",
                                                              "text_value": "x.png"}}
    result = host.run(graph, timeout=60)
    assert result.status == "error"
    assert "99.image: no node with this id" in result.error["exception_message"]
    assert sim.count("create") == 0


def test_typed_text_takes_the_remote_field_type(host, sim):
    graph = run_fetch(WORKFLOWS["noise"], overrides=["12", 0])
    graph["12"] = {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "seed",
                                                              "text_value": " 123 "}}
    assert host.run(graph, timeout=60).status == "success"
    assert sim.tasks()[0]["overrides"] == [{"nodeId": "1", "fieldName": "seed", "fieldValue": 123}]


def test_mixed_outputs_come_back_right(host, sim):
    graph = run_fetch(WORKFLOWS["mixed"], save_prefix="mixed")
    graph["16"] = {"class_type": "SaveVideo", "inputs": {"video": ["14", 2], "filename_prefix": "mixedvideo",
                                                         "format": "auto", "codec": "auto"}}
    graph["17"] = {"class_type": "PreviewAny", "inputs": {"source": ["14", 4]}}
    graph["18"] = {"class_type": "PreviewAny", "inputs": {"source": ["14", 5]}}
    # AUDIO goes back out through RH Upload and a remote LoadAudio → SaveAudio run.
    graph["19"] = {"class_type": "RHUpload", "inputs": {"audio": ["14", 3], "account": "default"}}
    graph["20"] = {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "audio",
                                                              "value": ["19", 0]}}
    graph.update(run_fetch(WORKFLOWS["audio"], overrides=["20", 0], prefix="a", save_images=False))
    result = host.run(graph, timeout=120)
    assert result.status == "success", result.error

    images = saved_pixels(host, result, "15")
    assert len(images) == 3 and all(im.shape[:2] == (64, 64) for im in images)  # padded to the largest
    assert tuple(images[0][0, 0, :3]) == (0x20, 0x40, 0xFF)  # the blue square, exact
    client = make_client(sim)
    tasks = sorted(sim.tasks(), key=lambda t: t["created"])
    mixed = client.outputs(tasks[0]["taskId"]).result
    noise_urls = [o.url for o in mixed.outputs if o.node_id == "4"]
    import requests
    noise = [np.asarray(Image.open(io.BytesIO(requests.get(u, timeout=5).content)).convert("RGB"))
             for u in noise_urls]
    assert np.array_equal(images[1][:16, :32, :3], noise[0]) and np.array_equal(images[2][:16, :32, :3], noise[1])

    video = result.outputs["16"]["images"][0]
    probe = pack_module("media.video").probe_video(host.view_bytes(video["filename"], video["subfolder"],
                                                                   video["type"]))
    assert (probe.width, probe.height) == (16, 16) and probe.frame_count == 6

    assert result.outputs["17"]["text"] == ["mixed outputs"]
    urls = result.outputs["18"]["text"][0].splitlines()
    assert len(urls) == 6 and {u.split("\t")[0] for u in urls} == {"2", "4", "7", "9", "10"}

    audio = pack_module("media.audio")
    original = audio.decode_audio(requests.get(next(o.url for o in mixed.outputs if o.node_id == "9"),
                                               timeout=5).content)
    round_trip_task = client.outputs(tasks[1]["taskId"]).result
    back = audio.decode_audio(requests.get(round_trip_task.outputs[0].url, timeout=5).content)
    assert back["sample_rate"] == original["sample_rate"]
    assert back["waveform"].shape == original["waveform"].shape
    assert float((back["waveform"] - original["waveform"]).abs().max()) <= 1 / 32768 + 1e-6


def test_fetch_by_task_id_reattaches_without_running_again(host, sim):
    client = make_client(sim)
    handle = client.create_task(WORKFLOWS["empty"])
    graph = {"14": {"class_type": "RHFetchOutputs", "inputs": {"task_id": handle.task_id, "account": "default",
                                                               "size_policy": "pad"}},
             "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "reattach"}}}
    result = host.run(graph, timeout=60)
    assert result.status == "success", result.error
    images = saved_pixels(host, result, "15")
    assert len(images) == 2 and images[0].shape[:2] == (48, 64)
    assert sim.count("create") == 1


def test_image_batch_uploads_each_image_and_runs_once_per_image(host, sim):
    result = host.run(two_image_batch_run_fetch(WORKFLOWS["invert"], save_prefix="batch"), timeout=120)
    assert result.status == "success", result.error
    assert sim.count("upload") == 2 and sim.count("create") == 2
    colours = sorted(tuple(im[0, 0, :3]) for im in saved_pixels(host, result, "15"))
    assert colours == [(0, 255, 255), (255, 0, 255)]


def test_mask_rides_along_as_alpha(host, sim):
    pixels = np.zeros((8, 8, 4), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[..., 3] = 255
    pixels[:4, :, 3] = 0  # top half transparent → LoadImage mask 1 there
    name = host.upload_image(png_bytes(pixels), "alpha.png")["name"]
    graph = {
        "10": {"class_type": "LoadImage", "inputs": {"image": name}},
        "11": {"class_type": "RHUpload", "inputs": {"image": ["10", 0], "mask": ["10", 1], "account": "default"}},
        "12": {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "image", "value": ["11", 0]}},
        **run_fetch(WORKFLOWS["mask"], overrides=["12", 0], save_prefix="mask"),
    }
    result = host.run(graph, timeout=120)
    assert result.status == "success", result.error
    [out] = saved_pixels(host, result, "15")
    assert (out[:4, :, 0] == 255).all() and (out[4:, :, 0] == 0).all()


def test_the_key_appears_nowhere(host, sim):
    name, _ = local_image(host, 9)
    ok = host.run(upload_run_fetch(name, WORKFLOWS["invert"]), timeout=120)
    failed = host.run(run_fetch(WORKFLOWS["fail"]), timeout=60)
    assert ok.status == "success" and failed.status == "error"
    key = sim.keys[0]
    [saved] = ok.images("15")
    png = Image.open(io.BytesIO(host.view_bytes(saved["filename"], saved["subfolder"], saved["type"])))
    metadata = json.dumps(dict(png.info), default=str)
    assert "RHRunWorkflow" in metadata  # the graph is there, the key is not
    places = {"png metadata": metadata, "history": json.dumps(host.history()), "log": host.log_text(),
              "error": json.dumps(failed.error), "events": json.dumps([e.data for e in ok.events], default=str),
              "object_info": json.dumps(host.object_info())}
    for where, text in places.items():
        assert key not in text, f"key found in {where}"
        assert key[:16] not in text, f"part of the key found in {where}"


def test_missing_key_says_how_to_add_one(comfy_host_factory, sim):
    bare = comfy_host_factory(env={"RUNNINGHUB_BASE_URL": sim.base_url}, name="nokey")
    result = bare.run(run_fetch(WORKFLOWS["empty"]), timeout=60)
    assert result.status == "error"
    assert "RUNNINGHUB_API_KEY" in result.error["exception_message"]


def test_a_real_comfyui_behind_the_simulator(plain_comfy, comfy_host_factory):
    with Simulator(comfyui_url=plain_comfy.base_url) as remote_sim:
        host = comfy_host_factory(env={"RUNNINGHUB_BASE_URL": remote_sim.base_url,
                                       "RUNNINGHUB_API_KEY": remote_sim.keys[0]}, name="to-real")
        name, pixels = local_image(host, 3)
        result = host.run(upload_run_fetch(name, WORKFLOWS["invert"]), timeout=180)
        assert result.status == "success", result.error
        [out] = saved_pixels(host, result, "15")
        [remote_run] = [h for h in plain_comfy.history().values()
                        if any(o.get("images") for o in h.get("outputs", {}).values())][-1:]
        [remote_image] = [i for o in remote_run["outputs"].values() for i in o.get("images", [])]
        computed = np.asarray(Image.open(io.BytesIO(plain_comfy.view_bytes(
            remote_image["filename"], remote_image["subfolder"], remote_image["type"]))))
        assert np.array_equal(out[:, :, :3], computed[:, :, :3])  # exactly what the remote graph computed
        assert np.abs(out[:, :, :3].astype(int) - (255 - pixels)).max() <= 1  # ComfyUI truncates 255 * (1 - x)
        assert remote_sim.count("create") == 1


def test_fetch_shows_previews_of_what_it_fetched(host, sim):
    result = host.run(run_fetch(WORKFLOWS["empty"]), timeout=60)
    assert result.status == "success", result.error
    previews = result.outputs["14"]["images"]
    assert len(previews) == 2 and all(p["type"] == "temp" for p in previews)
    shown = Image.open(io.BytesIO(host.view_bytes(previews[0]["filename"], previews[0]["subfolder"], "temp")))
    assert shown.size == (64, 48)
    assert "2 image(s) 64x48" in result.outputs["14"]["text"][0]


def test_fetch_previews_its_audio(host, sim):
    """The node's preview has an audio player for the fetched audio, as Preview Audio's."""
    import requests

    result = host.run(run_fetch(WORKFLOWS["mixed"], save_images=False), timeout=120)
    assert result.status == "success", result.error
    (preview,) = result.outputs["14"]["audio"]
    assert preview["type"] == "temp"
    audio = pack_module("media.audio")
    shown = audio.decode_audio(host.view_bytes(preview["filename"], preview["subfolder"], "temp"))
    (task,) = sim.tasks()
    remote = next(o for o in make_client(sim).outputs(task["taskId"]).result.outputs if o.node_id == "9")
    original = audio.decode_audio(requests.get(remote.url, timeout=5).content)
    assert shown["sample_rate"] == original["sample_rate"]
    assert shown["waveform"].shape == original["waveform"].shape
    assert float((shown["waveform"] - original["waveform"]).abs().max()) == 0.0  # the file as fetched


def test_a_video_value_goes_up_unchanged_and_comes_back(host, sim):
    """Fetch's VIDEO → RH Upload (no re-encode) → a remote LoadVideo/SaveVideo run → Fetch → SaveVideo."""
    graph = run_fetch(WORKFLOWS["mixed"], save_images=False)
    graph["19"] = {"class_type": "RHUpload", "inputs": {"video": ["14", 2], "account": "default"}}
    graph["20"] = {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "file",
                                                              "value": ["19", 0]}}
    graph.update(run_fetch(WORKFLOWS["video"], overrides=["20", 0], prefix="v", save_images=False))
    graph["21"] = {"class_type": "SaveVideo", "inputs": {"video": ["v14", 2], "filename_prefix": "roundtrip",
                                                         "format": "auto", "codec": "auto"}}
    result = host.run(graph, timeout=120)
    assert result.status == "success", result.error
    import requests
    client = make_client(sim)
    first, second = sorted(sim.tasks(), key=lambda t: t["created"])
    original = next(o for o in client.outputs(first["taskId"]).result.outputs if o.node_id == "7")
    uploaded_name = second["overrides"][0]["fieldValue"]
    original_bytes = requests.get(original.url, timeout=5).content
    import hashlib
    assert uploaded_name == f"api/{hashlib.sha256(original_bytes).hexdigest()}.mp4"  # sent as is
    saved = result.outputs["21"]["images"][0]
    probe = pack_module("media.video").probe_video(host.view_bytes(saved["filename"], saved["subfolder"],
                                                                   saved["type"]))
    assert (probe.width, probe.height, probe.frame_count) == (16, 16, 6)


@pytest.mark.comfyui_min("0.33.0")  # VIDEO values with a trim window (core node "Trim Video")
@pytest.mark.parametrize(("start", "duration", "frames"), [(0.25, 0.0, 4), (0.0, 0.0, 6)])
def test_a_trimmed_video_goes_up_trimmed_and_an_untrimmed_one_unchanged(host, sim, start, duration, frames):
    """Fetch's VIDEO (6 frames at 8 fps) → Trim Video → RH Upload: the upload holds only the
    trimmed frames; a trim that keeps everything still sends the original file's bytes."""
    import hashlib

    import requests

    graph = run_fetch(WORKFLOWS["mixed"], save_images=False)
    graph["18"] = {"class_type": "Video Slice", "inputs": {"video": ["14", 2], "start_time": start,
                                                           "duration": duration, "strict_duration": False}}
    graph["19"] = {"class_type": "RHUpload", "inputs": {"video": ["18", 0], "account": "default"}}
    graph["20"] = {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "file",
                                                              "value": ["19", 0]}}
    graph.update(run_fetch(WORKFLOWS["video"], overrides=["20", 0], prefix="v", save_images=False))
    result = host.run(graph, timeout=120)
    assert result.status == "success", result.error
    first, second = sorted(sim.tasks(), key=lambda t: t["created"])
    client = make_client(sim)
    original = next(o for o in client.outputs(first["taskId"]).result.outputs if o.node_id == "7")
    original_bytes = requests.get(original.url, timeout=5).content
    uploaded = next(o for o in client.outputs(second["taskId"]).result.outputs)
    uploaded_bytes = requests.get(uploaded.url, timeout=5).content
    probe = pack_module("media.video").probe_video(uploaded_bytes)
    assert (probe.width, probe.height, probe.frame_count) == (16, 16, frames)
    sent_as_is = second["overrides"][0]["fieldValue"] == f"api/{hashlib.sha256(original_bytes).hexdigest()}.mp4"
    assert sent_as_is == (frames == 6)


def test_an_image_over_the_upload_limit_is_refused_before_sending(host, sim):
    noise = np.random.default_rng(5).integers(0, 256, (3200, 3400, 3), dtype=np.uint8)
    name = host.upload_image(png_bytes(noise), "huge-noise.png")["name"]
    result = host.run(upload_run_fetch(name, WORKFLOWS["invert"]), timeout=120)
    assert result.status == "error"
    message = result.error["exception_message"]
    assert "30.0 MB" in message or "30 MB" in message, message
    assert "Downscale" in message
    assert sim.count("upload") == 0 and sim.count("create") == 0


def test_remote_validation_errors_fail_at_once(host, sim):
    """433 with promptTips.node_errors: the run fails at create, naming the remote node."""
    result = host.run(run_fetch(WORKFLOWS["unsupported"]), timeout=60)
    assert result.status == "error"
    message = result.error["exception_message"]
    assert "433" in message and "node 4 (CheckpointLoaderSimple)" in message
    assert sim.tasks() == [] and sim.count("outputs") == 0
