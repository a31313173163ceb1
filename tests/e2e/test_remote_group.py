"""RH Remote Group end to end: a ComfyUI with the pack converts a group of its graph
(POST /runninghub/group/convert) and runs it on "RunningHub" — the simulator's native
endpoint `/proxy/{key}/…`, which relays to a second, plain ComfyUI (`plain_comfy`)."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from support import secret_scan
from support.graphs import run_fetch
from support.simulator import WORKFLOWS, Simulator, random_keys
from support.images import png_bytes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sim(plain_comfy):
    with Simulator(comfyui_url=plain_comfy.base_url, concurrency=2) as s:
        yield s


@pytest.fixture(scope="module")
def host(sim, comfy_host_factory):
    return comfy_host_factory(env=sim.pack_env())


@pytest.fixture(autouse=True)
def _fresh_each_test(fresh):
    """Every test starts from the simulator's start state on an idle ComfyUI."""


def local_image(host, seed: int, size=(24, 16), channels=3) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return host.upload_image(png_bytes(pixels), f"group-{seed}.png")["name"]


def saved(host, result, node_id: str) -> list[np.ndarray]:
    images = result.images(node_id)
    assert images, f"node {node_id} saved nothing: {result.outputs}"
    return [np.asarray(Image.open(io.BytesIO(host.view_bytes(i["filename"], i["subfolder"], i["type"]))))
            for i in images]


def convert(host, prompt: dict, *groups: dict):
    return host.post("/runninghub/group/convert", json={"prompt": prompt, "groups": list(groups)})


def converted(host, prompt: dict, *groups: dict) -> tuple[dict, list[dict]]:
    reply = convert(host, prompt, *groups)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["prompt"], body["groups"]


def chain(image: str, prefix: str) -> dict:
    """LoadImage(10) → [ImageScale(11) → ImageInvert(12) → ImageBlur(13)] → SaveImage(14)."""
    return {
        "10": {"class_type": "LoadImage", "inputs": {"image": image}, "_meta": {"title": "Load Image"}},
        "11": {"class_type": "ImageScale", "inputs": {"image": ["10", 0], "upscale_method": "bilinear", "width": 40,
                                                       "height": 30, "crop": "disabled"}},
        "12": {"class_type": "ImageInvert", "inputs": {"image": ["11", 0]}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["12", 0], "blur_radius": 2, "sigma": 1.3}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": prefix}},
    }


GROUP = {"title": "Heavy part", "node_ids": ["11", "12", "13"], "account": "default"}


def statuses(result, node_id: str) -> list[dict]:
    return [e.data for e in result.events_of("runninghub.status") if e.data["node"] == node_id]


def no_key_in(sim, *texts: str) -> None:
    for text in texts:
        assert not secret_scan.leaks(text, sim.keys), text[:300]


def test_convert_route_replaces_the_group_and_refuses_other_types(host, sim):
    prompt, [info] = converted(host, chain("x.png", "p"), GROUP)
    gid = info["node_id"]
    assert set(prompt) == {"10", "14", gid} and prompt["14"]["inputs"]["images"] == [gid, 0]
    assert prompt[gid]["class_type"] == "RHRemoteGroup" and prompt[gid]["inputs"]["in_0"] == ["10", 0]
    assert [i["type"] for i in info["inputs"]] == ["IMAGE"] and [o["type"] for o in info["outputs"]] == ["IMAGE"]

    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"},
              "_meta": {"title": "Load Checkpoint"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0],
                                                   "latent_image": ["5", 0], "seed": 1, "steps": 2, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
    }
    reply = convert(host, graph, {"title": "Sampler", "node_ids": ["3"], "account": "default"})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert 'Group "Sampler" cannot run on RunningHub' in error
    assert ("the link from \"Load Checkpoint\" (CheckpointLoaderSimple #4) output 0 to KSampler #3 input 'model' "
            "carries MODEL") in error
    assert "CLIPTextEncode #6 output 0 to KSampler #3 input 'positive' carries CONDITIONING" in error
    assert "EmptyLatentImage #5 output 0 to KSampler #3 input 'latent_image' carries LATENT" in error
    assert "from KSampler #3 output 0 to VAEDecode #8 input 'samples' carries LATENT" in error
    assert convert(host, graph, {"title": "x", "node_ids": ["3"], "account": "../etc"}).status_code == 400
    assert len(sim.native_prompts()) == 0 and sim.count("native/object_info") == 0  # convert sends nothing
    # the host guard covers the route like every other
    assert host.post("/runninghub/group/convert", json={}, headers={"Host": "evil.example:8188"}).status_code == 403


def test_a_group_gives_exactly_the_pixels_of_the_local_run(host, sim):
    image = local_image(host, 21)
    local = host.run(chain(image, "group-local"), timeout=120)
    assert local.status == "success", local.error
    prompt, [info] = converted(host, chain(image, "group-remote"), GROUP)
    remote = host.run(prompt, timeout=180)
    assert remote.status == "success", remote.error
    [want] = saved(host, local, "14")
    [got] = saved(host, remote, "14")
    assert got.shape == want.shape == (30, 40, 3)
    assert np.array_equal(got, want)
    assert len(sim.native_prompts()) == 1 and sim.count("native/upload") == 1
    events = statuses(remote, info["node_id"])
    assert events and events[-1]["state"] == "SUCCESS", events
    states = [e["state"] for e in events]
    assert states.count("SUBMITTING") == 1 and states.count("SUCCESS") == 1, states  # each state once
    assert events[-1]["task_id"] and events[-1]["outputs"] and "done on" in events[-1]["line"], events[-1]
    assert any(e["state"] == "QUEUED" and e["task_id"] == events[-1]["task_id"] for e in events), events
    no_key_in(sim, json.dumps(remote.history), json.dumps([e.data for e in remote.events if isinstance(e.data, dict)]),
              host.log_text())

    # queued again with the same inputs: reused, nothing sent again (no upload either)
    again = host.run(prompt, timeout=120)
    assert again.status == "success" and len(sim.native_prompts()) == 1
    assert sim.count("native/upload") == 1


def test_masks_text_numbers_and_booleans_cross_the_border(host, sim):
    image = local_image(host, 22, size=(20, 12), channels=4)  # its alpha becomes Load Image's mask
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "PrimitiveString", "inputs": {"value": "hello"}},
        "3": {"class_type": "PrimitiveInt", "inputs": {"value": 28}},
        "5": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                      "width": ["3", 0], "height": ["3", 0], "crop": "disabled"}},
        "6": {"class_type": "GrowMask", "inputs": {"mask": ["1", 1], "expand": 1, "tapered_corners": True}},
        "7": {"class_type": "StringConcatenate", "inputs": {"string_a": ["2", 0], "string_b": "world",
                                                             "delimiter": ", "}},
        "8": {"class_type": "ImageToMask", "inputs": {"image": ["5", 0], "channel": "green"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "g-img"}},
        "11": {"class_type": "MaskToImage", "inputs": {"mask": ["6", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "g-grown"}},
        "13": {"class_type": "MaskToImage", "inputs": {"mask": ["8", 0]}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "g-green"}},
        "15": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
        "20": {"class_type": "PrimitiveBoolean", "inputs": {"value": False}},
        "21": {"class_type": "PrimitiveFloat", "inputs": {"value": 0.7}},
        "22": {"class_type": "ImageBlur", "inputs": {"image": ["5", 0], "blur_radius": 1, "sigma": ["21", 0]}},
        "23": {"class_type": "SaveImage", "inputs": {"images": ["22", 0], "filename_prefix": "g-blur"}},
        "16": {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "blue"}},  # k/255 values
        "17": {"class_type": "GrowMask", "inputs": {"mask": ["16", 0], "expand": -1, "tapered_corners": ["20", 0]}},
        "18": {"class_type": "MaskToImage", "inputs": {"mask": ["17", 0]}},
        "19": {"class_type": "SaveImage", "inputs": {"images": ["18", 0], "filename_prefix": "g-shrunk"}},
    }
    local = host.run(graph, timeout=120)
    assert local.status == "success", local.error
    prompt, [info] = converted(host, graph, {"title": "Masks", "node_ids": ["5", "6", "7", "8", "17", "22"]})
    assert [(i["type"]) for i in info["inputs"]] == ["IMAGE", "INT", "MASK", "STRING", "FLOAT", "MASK", "BOOLEAN"]
    assert [(o["type"]) for o in info["outputs"]] == ["IMAGE", "MASK", "MASK", "STRING", "IMAGE", "MASK"]
    remote = host.run(prompt, timeout=180)
    assert remote.status == "success", (remote.error or {}).get("exception_message")
    for node_id in ("10", "12", "14", "19", "23"):
        [want] = saved(host, local, node_id)
        [got] = saved(host, remote, node_id)
        assert np.array_equal(got, want), node_id
    assert saved(host, local, "12")[0].any()  # the grown mask is not empty
    assert remote.outputs["15"]["text"] == local.outputs["15"]["text"] == ["hello, world"]
    assert len(sim.native_prompts()) == 1 and sim.count("native/upload") == 3


def test_missing_node_class_and_model_file_fail_before_anything_is_billed(host, sim):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "not-on-runninghub.safetensors"},
              "_meta": {"title": "My checkpoint"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        # a class the remote ComfyUI lacks: the pack's own, installed only here
        "4": {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "x", "text_value": "y"}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "never"}},
    }
    prompt, [info] = converted(host, graph, {"title": "Needs models", "node_ids": ["1", "2", "3", "4", "5"]})
    result = host.run(prompt, timeout=120)
    assert result.status == "error"
    message = result.error["exception_message"]
    assert 'Group "Needs models" cannot run on RunningHub' in message and "nothing was uploaded or billed" in message
    assert "node class RHNodeOverride (used by RHNodeOverride #4)" in message
    assert ("model file 'not-on-runninghub.safetensors' (ckpt_name of \"My checkpoint\" "
            "(CheckpointLoaderSimple #1))") in message
    assert len(sim.native_prompts()) == 0 and sim.count("native/upload") == 0
    assert result.error["node_id"] == info["node_id"]
    events = statuses(result, info["node_id"])
    assert events[-1]["state"] == "FAILED" and "RHNodeOverride" in events[-1]["line"]
    no_key_in(sim, message, json.dumps(result.history), host.log_text())


def test_after_a_restart_the_same_group_reuses_its_remote_prompt(sim, comfy_host_factory):
    """The task ledger keeps native prompts: after a restart (ComfyUI's cache is gone) the same
    group with the same inputs re-attaches to the finished prompt instead of paying again."""
    host = comfy_host_factory(env=sim.pack_env(), fresh=True, name="group-restart")
    image = local_image(host, 23)
    prompt, [info] = converted(host, chain(image, "before"), GROUP)
    first = host.run(prompt, timeout=180)
    assert first.status == "success", first.error
    [want] = saved(host, first, "14")
    assert len(sim.native_prompts()) == 1
    host.restart()
    second = host.run(prompt, timeout=180)
    assert second.status == "success", second.error
    [got] = saved(host, second, "14")
    assert np.array_equal(got, want)
    assert len(sim.native_prompts()) == 1 and sim.count("native/upload") >= 1
    assert "re-attached to an earlier run" in statuses(second, info["node_id"])[-1]["line"]
    assert "re-attached" in second.outputs[info["node_id"]]["text"][0]  # the node's final status, in the history
    host.stop()


def test_a_run_again_uses_the_key_that_sent_the_earlier_prompt(host, sim):
    """Between two runs of the same group the profile's first usable key changes (a workflow
    run found it out of coins and set it aside): the second run must reuse the first's
    prompt with the key that sent it (only that key's remote knows the prompt and serves
    its files), not fail or pay again."""
    first_key, second_key = sim.keys[0], sim.keys[1]
    reply = host.post("/runninghub/profiles/pair", json={"site": "custom", "base_url": sim.base_url,
                                                         "keys": [first_key, second_key]})
    assert reply.status_code == 200, reply.text
    image = local_image(host, 25)
    prompt, [info] = converted(host, chain(image, "pair"), {**GROUP, "account": "pair"})
    first = host.run(prompt, timeout=180)
    assert first.status == "success", first.error
    [want] = saved(host, first, "14")
    [sent] = sim.native_prompts()
    assert sent["key"] == sim.redacted(first_key)
    sim.fault("create", "api_error", code=416)  # the first key has no coins left for a workflow run
    host.run(run_fetch(WORKFLOWS["noise"], account="pair"), timeout=120)
    assert sim.count("create", first_key) == 1  # tried, refused: set aside in the profile's key pool
    assert host.post("/free", json={"unload_models": False, "free_memory": True}).status_code == 200
    time.sleep(2.0)  # ComfyUI's worker drops its cached outputs: the group runs again
    second = host.run(prompt, timeout=180)
    assert second.status == "success", second.error
    [got] = saved(host, second, "14")
    assert np.array_equal(got, want) and len(sim.native_prompts()) == 1
    assert "re-attached to an earlier run" in statuses(second, info["node_id"])[-1]["line"]


def test_a_refused_key_is_named_by_its_last_four_only(host, sim):
    """Every URL of the native endpoint holds the key: a key the remote refuses fails the group
    with an error naming the site, and the key is in no error, history or log."""
    [unknown] = random_keys(1)
    saved_profile = host.post("/runninghub/profiles/stranger", json={"site": "custom", "base_url": sim.base_url,
                                                                     "keys": [unknown]})
    assert saved_profile.status_code == 200, saved_profile.text
    image = local_image(host, 24)
    prompt, [info] = converted(host, chain(image, "refused"), {**GROUP, "account": "stranger"})
    result = host.run(prompt, timeout=120)
    assert result.status == "error"
    message = result.error["exception_message"]
    assert "127.0.0.1" in message and unknown not in message
    assert len(sim.native_prompts()) == 0
    no_key_in(sim, message, json.dumps(result.history), host.log_text())
    assert not secret_scan.leaks(message + json.dumps(result.history) + host.log_text(), [unknown])


def slow_chain(image: str) -> dict:
    """LoadImage(10) → [ImageScale to 2048² (11) → ImageBlur ×4 (12…15)] → SaveImage(16): some
    seconds of CPU on the remote, with a node boundary (where ComfyUI interrupts) every second or so."""
    graph = {
        "10": {"class_type": "LoadImage", "inputs": {"image": image}},
        "11": {"class_type": "ImageScale", "inputs": {"image": ["10", 0], "upscale_method": "bicubic", "width": 2048,
                                                       "height": 2048, "crop": "disabled"}},
    }
    for k in range(12, 16):
        graph[str(k)] = {"class_type": "ImageBlur", "inputs": {"image": [str(k - 1), 0], "blur_radius": 12,
                                                                "sigma": 4.0}}
    graph["16"] = {"class_type": "SaveImage", "inputs": {"images": ["15", 0], "filename_prefix": "slow"}}
    return graph


def test_cancel_interrupts_the_remote_prompt_once(host, sim, plain_comfy):
    image = local_image(host, 25)
    prompt, [info] = converted(host, slow_chain(image), {"title": "Slow", "node_ids": [str(k) for k in range(11, 16)]})
    gid = info["node_id"]
    sent = []

    def on_event(event):
        data = event.data if isinstance(event.data, dict) else {}
        if (event.type == "runninghub.status" and data.get("node") == gid and data.get("state") == "RUNNING"
                and not sent):
            sent.append(True)
            host.interrupt()

    result = host.run(prompt, timeout=180, on_event=on_event)
    assert sent and result.status == "interrupted", (result.status, result.error)
    assert sim.count("native/interrupt") == 1  # running: one interrupt, no queue delete
    [task] = sim.native_prompts()
    ended = sim.wait_for(lambda: (t := sim.native_prompts()[0])["finished"] and t, timeout=60, interval=0.2)
    assert ended["consumeCoins"] == 0  # an interrupted prompt is not billed
    remote = sim.wait_for(lambda: plain_comfy.history(task["promptId"]), timeout=60, interval=0.2)
    assert remote["status"]["status_str"] == "error"  # how ComfyUI files an interrupted prompt
    assert any(m[0] == "execution_interrupted" for m in remote["status"]["messages"])
    assert not remote.get("outputs")  # the remote Save Image never ran
    events = statuses(result, gid)
    assert events[-1]["state"] == "CANCEL", events[-1]

