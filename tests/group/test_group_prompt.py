"""The group → remote prompt conversion (remote/group_prompt.py) and the remote check
(remote/remote_check.py): pure, no ComfyUI."""

from __future__ import annotations

import json

import pytest

from support.pack import pack_module

gp = pack_module("remote.group_prompt")
rc = pack_module("remote.remote_check")

RETURN_TYPES = {
    "LoadImage": ["IMAGE", "MASK"],
    "ImageScale": ["IMAGE"],
    "ImageInvert": ["IMAGE"],
    "ImageBlur": ["IMAGE"],
    "SaveImage": [],
    "PreviewImage": [],
    "CheckpointLoaderSimple": ["MODEL", "CLIP", "VAE"],
    "KSampler": ["LATENT"],
    "EmptyLatentImage": ["LATENT"],
    "VAEDecode": ["IMAGE"],
    "CLIPTextEncode": ["CONDITIONING"],
    "PrimitiveInt": ["INT"],
    "PrimitiveString": ["STRING"],
    "StringConcatenate": ["STRING"],
    "SomeComboOut": [["a", "b"]],
    "ImageToMask": ["MASK"],
    "GrowMask": ["MASK"],
}


def output_types(class_type):
    return RETURN_TYPES[class_type]


def node(cls, title=None, **inputs):
    n = {"class_type": cls, "inputs": inputs}
    if title:
        n["_meta"] = {"title": title}
    return n


def chain_prompt():
    """LoadImage(10) → [ImageScale(11) → ImageInvert(12) → ImageBlur(13)] → SaveImage(14)."""
    return {
        "10": node("LoadImage", "Load Image", image="photo.png"),
        "11": node("ImageScale", upscale_method="nearest-exact", width=32, height=24, crop="disabled",
                   image=["10", 0]),
        "12": node("ImageInvert", image=["11", 0]),
        "13": node("ImageBlur", image=["12", 0], blur_radius=1, sigma=1.0),
        "14": node("SaveImage", images=["13", 0], filename_prefix="local"),
    }


def group(*ids, title="Heavy", account="default"):
    return {"title": title, "node_ids": list(ids), "account": account}


def test_a_chain_becomes_one_node_with_an_image_in_and_out():
    prompt = chain_prompt()
    before = json.dumps(prompt, sort_keys=True)
    converted = gp.convert(prompt, [group("11", "12", "13")], output_types)
    assert json.dumps(prompt, sort_keys=True) == before  # the caller's prompt is not changed
    out = converted.prompt
    [info] = converted.groups
    gid = info["node_id"]
    assert set(out) == {"10", "14", gid}
    assert out["14"]["inputs"]["images"] == [gid, 0]
    assert out[gid]["class_type"] == "RHRemoteGroup"
    assert out[gid]["inputs"]["account"] == "default" and out[gid]["inputs"]["in_0"] == ["10", 0]
    assert out[gid]["_meta"]["title"] == "Heavy"
    spec = json.loads(out[gid]["inputs"]["group"])
    assert spec["version"] == 1 and spec["title"] == "Heavy"
    assert set(spec["prompt"]) == {"11", "12", "13"}
    assert "image" not in spec["prompt"]["11"]["inputs"]  # the border input is filled at run time
    assert spec["prompt"]["12"]["inputs"]["image"] == ["11", 0]  # inner links kept
    assert spec["inputs"] == [{"name": "in_0", "type": "IMAGE", "to": [["11", "image"]],
                               "from": '"Load Image" (LoadImage #10) output 0 (IMAGE)'}]
    assert spec["outputs"] == [{"name": "out_0", "type": "IMAGE", "from": ["13", 0],
                                "label": "ImageBlur #13 output 0 (IMAGE)"}]
    assert info["inputs"] == spec["inputs"] and info["outputs"] == spec["outputs"]


def test_every_type_that_may_enter_and_leave():
    prompt = {
        "1": node("LoadImage", image="x.png"),
        "2": node("PrimitiveInt", value=5),
        "3": node("PrimitiveString", value="hi"),
        "4": node("SomeComboOut"),
        "5": node("ImageScale", image=["1", 0], width=["2", 0], height=["2", 0], upscale_method=["4", 0],
                  crop="disabled"),
        "6": node("ImageToMask", image=["5", 0], channel="red"),
        "7": node("GrowMask", mask=["1", 1], expand=2, tapered_corners=True),
        "8": node("StringConcatenate", string_a=["3", 0], string_b="!"),
        "9": node("SaveImage", images=["5", 0]),
        "20": node("PreviewAny", source=["8", 0]),
        "21": node("PreviewAny", source=["7", 0]),
        "22": node("PreviewAny", source=["6", 0]),
    }
    converted = gp.convert(prompt, [group("5", "6", "7", "8")], output_types)
    gid = converted.groups[0]["node_id"]
    spec = json.loads(converted.prompt[gid]["inputs"]["group"])
    assert [(i["name"], i["type"], i["to"]) for i in spec["inputs"]] == [
        ("in_0", "IMAGE", [["5", "image"]]),
        ("in_1", "INT", [["5", "width"], ["5", "height"]]),  # one value feeding two inputs: one port
        ("in_2", "COMBO", [["5", "upscale_method"]]),
        ("in_3", "MASK", [["7", "mask"]]),
        ("in_4", "STRING", [["8", "string_a"]]),
    ]
    assert [(o["name"], o["type"], o["from"]) for o in spec["outputs"]] == [
        ("out_0", "IMAGE", ["5", 0]), ("out_1", "STRING", ["8", 0]), ("out_2", "MASK", ["7", 0]),
        ("out_3", "MASK", ["6", 0])]
    p = converted.prompt
    assert p["9"]["inputs"]["images"] == [gid, 0] and p["20"]["inputs"]["source"] == [gid, 1]
    assert p["21"]["inputs"]["source"] == [gid, 2] and p["22"]["inputs"]["source"] == [gid, 3]
    assert [p[gid]["inputs"][f"in_{k}"] for k in range(5)] == [["1", 0], ["2", 0], ["4", 0], ["1", 1], ["3", 0]]


def test_other_types_are_refused_naming_each_link_and_its_type():
    prompt = {
        "4": node("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="sd15.safetensors"),
        "5": node("EmptyLatentImage", width=64, height=64, batch_size=1),
        "6": node("CLIPTextEncode", text="cat", clip=["4", 1]),
        "3": node("KSampler", model=["4", 0], positive=["6", 0], negative=["6", 0], latent_image=["5", 0],
                  seed=1, steps=2, cfg=1.0, sampler_name="euler", scheduler="normal", denoise=1.0),
        "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
        "9": node("SaveImage", images=["8", 0]),
    }
    with pytest.raises(gp.GroupError) as caught:
        gp.convert(prompt, [group("6", "3", title="Sampling")], output_types)
    text = str(caught.value)
    assert 'Group "Sampling" cannot run on RunningHub; nothing was sent' in text
    assert ("the link from \"Load Checkpoint\" (CheckpointLoaderSimple #4) output 1 to CLIPTextEncode #6 "
            "input 'clip' carries CLIP") in text
    assert "output 0 to KSampler #3 input 'model' carries MODEL" in text
    assert "from EmptyLatentImage #5 output 0 to KSampler #3 input 'latent_image' carries LATENT" in text
    assert "from KSampler #3 output 0 to VAEDecode #8 input 'samples' carries LATENT" in text
    assert text.count("\n- ") == 4 and "IMAGE, MASK, STRING, INT, FLOAT, BOOLEAN" in text


def test_unknown_local_types_and_bad_requests_are_refused():
    prompt = chain_prompt()
    prompt["11"]["inputs"]["image"] = ["99", 0]
    prompt["99"] = node("NotInstalled")
    with pytest.raises(gp.GroupError, match="type of NotInstalled #99's output 0 is unknown"):
        gp.convert(prompt, [group("11", "12", "13")], lambda c: RETURN_TYPES[c])
    with pytest.raises(gp.GroupError, match="in two groups"):
        gp.convert(chain_prompt(), [group("11", "12"), group("12", "13", title="B")], output_types)
    with pytest.raises(gp.GroupError, match="no node that would run"):
        gp.convert(chain_prompt(), [group("77")], output_types)
    with pytest.raises(gp.GroupError, match="node_ids"):
        gp.convert(chain_prompt(), [{"title": "x", "node_ids": []}], output_types)


def test_two_groups_chain_through_the_local_graph():
    prompt = chain_prompt()
    converted = gp.convert(prompt, [group("11", title="A"), group("12", "13", title="B", account="team")],
                           output_types)
    a, b = (g["node_id"] for g in converted.groups)
    p = converted.prompt
    assert a != b and set(p) == {"10", "14", a, b}
    assert p[a]["inputs"]["in_0"] == ["10", 0]
    assert p[b]["inputs"]["in_0"] == [a, 0] and p[b]["inputs"]["account"] == "team"
    assert p["14"]["inputs"]["images"] == [b, 0]
    assert converted.groups[1]["inputs"][0]["type"] == "IMAGE"


def test_ids_of_groups_avoid_the_prompts_ids_and_are_stable():
    prompt = chain_prompt()
    prompt["rh-group-1"] = node("PreviewImage", images=["10", 0])
    one = gp.convert(prompt, [group("11", "12", "13")], output_types)
    two = gp.convert(prompt, [group("11", "12", "13")], output_types)
    assert one.groups[0]["node_id"] == "rh-group-2" and one.prompt == two.prompt


def test_remote_prompt_loads_uploads_inlines_values_and_adds_output_nodes():
    prompt = {
        "1": node("LoadImage", image="x.png"),
        "2": node("PrimitiveInt", value=5),
        "5": node("ImageScale", image=["1", 0], width=["2", 0], height=["2", 0], upscale_method="area",
                  crop="disabled"),
        "7": node("GrowMask", mask=["1", 1], expand=2, tapered_corners=True),
        "8": node("StringConcatenate", string_a="a", string_b="!"),
        "9": node("SaveImage", images=["5", 0]),
        "20": node("PreviewAny", source=["8", 0]),
        "21": node("PreviewAny", source=["7", 0]),
    }
    converted = gp.convert(prompt, [group("5", "7", "8")], output_types)
    spec = gp.GroupSpec.from_json(converted.prompt[converted.groups[0]["node_id"]]["inputs"]["group"])
    remote = gp.remote_prompt(spec, {"in_1": 7}, {"in_0": ["a.png", "b.png"], "in_2": ["m.png"]})
    p = remote.prompt
    assert p["5"]["inputs"]["width"] == 7 and p["5"]["inputs"]["height"] == 7
    # ids above the group's: 9, 10 load the batch, 11 joins it, 12 loads the mask
    assert p["9"] == {"class_type": "LoadImage", "inputs": {"image": "a.png"}, "_meta": {"title": "RH in_0"}}
    assert p["10"]["inputs"] == {"image": "b.png"}
    assert p["11"]["class_type"] == "ImageBatch" and p["11"]["inputs"] == {"image1": ["9", 0], "image2": ["10", 0]}
    assert p["5"]["inputs"]["image"] == ["11", 0]
    assert p["12"] == {"class_type": "LoadImageMask", "inputs": {"image": "m.png", "channel": "red"},
                       "_meta": {"title": "RH in_2"}}
    assert p["7"]["inputs"]["mask"] == ["12", 0]
    assert remote.uploaded_fields == {("9", "image"), ("10", "image"), ("12", "image")}
    out = remote.output_nodes
    assert p[out["out_0"]]["class_type"] == "SaveImage" and p[out["out_0"]]["inputs"]["images"] == ["5", 0]
    assert p[out["out_1"]] ["class_type"] == "PreviewAny" and p[out["out_1"]]["inputs"]["source"] == ["8", 0]
    mask_save = p[out["out_2"]]
    assert mask_save["class_type"] == "SaveImage"
    to_image = p[mask_save["inputs"]["images"][0]]
    assert to_image["class_type"] == "MaskToImage" and to_image["inputs"]["mask"] == ["7", 0]
    # a mask batch: each loaded as an image, joined, its red channel taken
    remote = gp.remote_prompt(spec, {"in_1": 7}, {"in_0": ["a.png"], "in_2": ["m1.png", "m2.png"]})
    source = remote.prompt[remote.prompt["7"]["inputs"]["mask"][0]]
    assert source["class_type"] == "ImageToMask" and source["inputs"]["channel"] == "red"


def test_spec_json_is_checked():
    with pytest.raises(gp.GroupError, match="not JSON"):
        gp.GroupSpec.from_json("{nope")
    with pytest.raises(gp.GroupError, match="version 1"):
        gp.GroupSpec.from_json({"version": 2})
    bad = {"version": 1, "prompt": {"1": node("ImageInvert")}, "outputs": [{"name": "out_0", "type": "LATENT",
                                                                            "from": ["1", 0]}]}
    with pytest.raises(gp.GroupError, match="LATENT, which cannot leave"):
        gp.GroupSpec.from_json(bad)


def object_info():
    return {
        "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["sd15.safetensors", "sdxl.safetensors"],
                                                                        {}]}}},
        "LoadImage": {"input": {"required": {"image": [["remote.png"], {"image_upload": True}]}}},
        "ImageScale": {"input": {"required": {"upscale_method": ["COMBO", {"options": ["area", "bilinear"]}],
                                              "width": ["INT", {"default": 512}], "image": ["IMAGE", {}]}}},
        "SaveImage": {"input": {"required": {"images": ["IMAGE", {}]}}},
    }


def test_remote_check_lists_missing_classes_and_values_in_one_error():
    prompt = {
        "4": node("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="mine.safetensors"),
        "5": node("ImageScale", image=["6", 0], upscale_method="lanczos", width=8),
        "6": node("FancyNode", x=1),
        "7": node("FancyNode", x=2),
        "8": node("LoadImage", image="uploaded.png"),
        "9": node("SaveImage", images=["5", 0]),
    }
    missing = rc.find_missing(prompt, object_info(), skip={("8", "image")})
    assert missing.classes == {"FancyNode": ["FancyNode #6", "FancyNode #7"]}
    assert [(v["node_id"], v["input"], v["value"], v["model"]) for v in missing.values] == [
        ("4", "ckpt_name", "mine.safetensors", True), ("5", "upscale_method", "lanczos", False)]
    error = rc.missing_error(missing, what='Group "Heavy"', host="www.runninghub.cn")
    text = str(error)
    assert text.startswith('Group "Heavy" cannot run on RunningHub (www.runninghub.cn); nothing was uploaded or billed')
    assert "node class FancyNode (used by FancyNode #6, FancyNode #7)" in text
    assert "model file 'mine.safetensors' (ckpt_name of \"Load Checkpoint\" (CheckpointLoaderSimple #4))" in text
    assert "value 'lanczos' (upscale_method of ImageScale #5)" in text
    assert error.missing_classes == ["FancyNode"]
    assert not rc.find_missing({"4": node("CheckpointLoaderSimple", ckpt_name="sd15.safetensors")}, object_info())


def test_the_nodes_of_a_subgraph_in_the_group_belong_to_it():
    prompt = {
        "10": node("LoadImage", image="x.png"),
        "57:1": node("ImageScale", image=["10", 0], upscale_method="area", width=8, height=8, crop="disabled"),
        "57:2": node("ImageInvert", image=["57:1", 0]),
        "14": node("SaveImage", images=["57:2", 0]),
    }
    converted = gp.convert(prompt, [group("57")], output_types)
    gid = converted.groups[0]["node_id"]
    assert set(converted.prompt) == {"10", "14", gid}
    spec = json.loads(converted.prompt[gid]["inputs"]["group"])
    assert set(spec["prompt"]) == {"57:1", "57:2"} and spec["inputs"][0]["to"] == [["57:1", "image"]]
    remote = gp.remote_prompt(gp.GroupSpec.from_json(spec), {}, {"in_0": ["a.png"]})
    assert {"57:1", "57:2", "58", "59"} == set(remote.prompt)  # added ids above every part of the group's
    assert gp.in_group("57:30:2", {"57"}) and gp.in_group("57:30:2", {"57:30"}) and not gp.in_group("5", {"57"})
