"""remote/group_run.py without a network: inputs to files and values, outputs back."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from support.pack import pack_module

gp = pack_module("remote.group_prompt")
gr = pack_module("remote.group_run")


def spec(inputs=(), outputs=()):
    return gp.GroupSpec("G", {"1": {"class_type": "ImageInvert", "inputs": {}}},
                        tuple(gp.GroupInput(f"in_{k}", t, (("1", f"x{k}"),), "src") for k, t in enumerate(inputs)),
                        tuple(gp.GroupOutput(f"out_{k}", t, ("1", 0), "lbl") for k, t in enumerate(outputs)))


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_images_become_one_png_per_batch_item_named_by_content():
    pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3)).astype(np.float32) / 255.0)
    inline, uploads, channels = gr.encode_inputs(spec(["IMAGE", "INT"]), {"in_0": pixels, "in_1": 3})
    assert inline == {"in_1": 3} and channels == {}
    first, second = uploads["in_0"]
    assert first.name.startswith("rh-") and first.name != second.name and first.name == gr.file_name(first.data)
    assert np.array_equal(png_pixels(second.data), np.round(pixels[1].numpy() * 255).astype(np.uint8))


def test_a_mask_goes_up_in_the_form_that_comes_back_exact():
    k = torch.arange(0, 256, dtype=torch.float32).reshape(16, 16)
    as_image = k / 255.0  # Convert Image to Mask's values
    as_alpha = 1.0 - k / 255.0  # Load Image's mask (1 - alpha)
    [red], ch_red = gr._mask_pngs(as_image, "w")
    assert ch_red == "red" and torch.equal(torch.from_numpy(png_pixels(red)[..., 0].astype(np.float32)) / 255.0,
                                           as_image)
    [alpha], ch_alpha = gr._mask_pngs(as_alpha, "w")
    assert ch_alpha == "alpha"
    a = png_pixels(alpha)[..., 3]
    assert torch.equal(1.0 - torch.from_numpy(a.astype(np.float32)) / 255.0, as_alpha)
    prepared = gr.prepare(spec(["MASK"]), {"in_0": as_alpha.unsqueeze(0)})
    [load] = [n for n in prepared.planned.prompt.values() if n["class_type"] == "LoadImageMask"]
    assert load["inputs"]["channel"] == "alpha"


def test_wrong_values_are_named():
    with pytest.raises(gp.GroupError, match="in_0 .*nothing is connected"):
        gr.encode_inputs(spec(["STRING"]), {})
    with pytest.raises(gp.GroupError, match="expected INT, got bool"):
        gr.encode_inputs(spec(["INT"]), {"in_0": True})
    with pytest.raises(gp.GroupError, match="expected an IMAGE, got str"):
        gr.encode_inputs(spec(["IMAGE"]), {"in_0": "x"})


def test_outputs_are_decoded_from_the_history():
    pixels = np.random.default_rng(2).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    files = {"a.png": buf.getvalue()}
    s = spec(outputs=["IMAGE", "MASK", "STRING"])
    history = {"7": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]},
               "8": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]},
               "9": {"text": ["hello"]}}
    image, mask, text = gr.collect_outputs(s, {"out_0": "7", "out_1": "8", "out_2": "9"}, history,
                                           lambda ref: files[ref["filename"]])
    assert image.shape == (1, 4, 6, 3) and torch.equal(image[0], torch.from_numpy(pixels).float() / 255.0)
    assert mask.shape == (1, 4, 6) and torch.equal(mask[0], torch.from_numpy(pixels[..., 0]).float() / 255.0)
    assert text == "hello"
    with pytest.raises(Exception, match="out_0 .*returned no image"):
        gr.collect_outputs(s, {"out_0": "70", "out_1": "8", "out_2": "9"}, history, lambda ref: files[ref["filename"]])


def test_prefetched_outputs_are_used_only_for_the_files_the_history_names():
    pixels = np.random.default_rng(3).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    files = {"a.png": buf.getvalue(), "b.png": buf.getvalue()}
    fetched = []

    def download(ref):
        fetched.append(ref["filename"])
        return files[ref["filename"]]

    s = spec(outputs=["IMAGE", "STRING"])
    ref = {"filename": "a.png", "subfolder": "", "type": "output"}
    prefetch = gr.Prefetch(s, {"out_0": "7", "out_1": "9"}, download)
    prefetch.executed("9", {"text": ["hi"]})  # not an image output: nothing to fetch
    prefetch.executed("5", {"images": [ref]})  # not an output node of the group
    prefetch.executed("7", {"images": [ref]})
    image, text = gr.collect_outputs(s, {"out_0": "7", "out_1": "9"}, {"7": {"images": [ref]}, "9": {"text": ["hi"]}},
                                     lambda r: pytest.fail("downloaded again"), prefetch)
    assert fetched == ["a.png"] and torch.equal(image[0], torch.from_numpy(pixels).float() / 255.0)
    prefetch.close()

    other = gr.Prefetch(s, {"out_0": "7", "out_1": "9"}, download)
    other.executed("7", {"images": [ref]})
    named = {"filename": "b.png", "subfolder": "", "type": "output"}  # the history decides: another file
    image, _ = gr.collect_outputs(s, {"out_0": "7", "out_1": "9"}, {"7": {"images": [named]}, "9": {"text": ["x"]}},
                                  download, other)
    other.close()  # its a.png may still be fetched meanwhile, in the prefetch's thread: not used
    assert fetched.count("b.png") == 1 and image.shape == (1, 4, 6, 3)

    failing = gr.Prefetch(s, {"out_0": "7", "out_1": "9"}, lambda r: (_ for _ in ()).throw(OSError("cut")))
    failing.executed("7", {"images": [ref]})
    image, _ = gr.collect_outputs(s, {"out_0": "7", "out_1": "9"}, {"7": {"images": [ref]}, "9": {"text": ["x"]}},
                                  download, failing)  # a failed prefetch: downloaded the usual way
    assert fetched[-1] == "a.png" and image.shape == (1, 4, 6, 3)
    failing.close()
    failing.executed("7", {"images": [ref]})  # after close: ignored


def test_the_precheck_before_encoding_agrees_with_the_check():
    """precheck (before the inputs are encoded: the socket may open meanwhile) passes only
    what check_remote passes, and never raises."""
    s = spec(["IMAGE", "INT"], ["IMAGE"])
    info = {name: {"input": {"required": {}}, "output_node": name == "SaveImage"}
            for name in ("ImageInvert", "LoadImage", "ImageBatch", "SaveImage")}
    image = torch.zeros((2, 4, 4, 3))
    assert gr.precheck(s, {"in_0": image, "in_1": 3}, info, host="h") is True
    gr.check_remote(gr.prepare(s, {"in_0": image, "in_1": 3}), info, host="h")
    assert gr.precheck(s, {"in_0": image, "in_1": "3"}, info, host="h") is False  # a wrong type
    assert gr.precheck(s, {"in_1": 3}, info, host="h") is False  # nothing connected
    for lacks in ("ImageInvert", "ImageBatch"):  # a node of the group; one the pack adds for a batch of 2
        lacking = {k: v for k, v in info.items() if k != lacks}
        assert gr.precheck(s, {"in_0": image, "in_1": 3}, lacking, host="h") is False
        with pytest.raises(Exception, match=lacks):
            gr.check_remote(gr.prepare(s, {"in_0": image, "in_1": 3}), lacking, host="h")
        assert gr.precheck(s, {"in_0": image[:1], "in_1": 3}, lacking, host="h") is (lacks == "ImageBatch")


def test_each_distinct_file_is_uploaded_once():
    same = torch.zeros((3, 4, 4, 3))
    same[1] = 1.0  # items 0 and 2 are the same picture
    prepared = gr.prepare(spec(["IMAGE", "IMAGE"]), {"in_0": same, "in_1": same[:1]})
    sent = []

    def upload(data, name):
        sent.append(name)
        return "sub/" + name

    names = gr.upload_all(upload, prepared)
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 2
    remote = prepared.with_names(names)
    loads = [n["inputs"]["image"] for n in remote.prompt.values() if n["class_type"] == "LoadImage"]
    assert len(loads) == 4 and all(name.startswith("sub/rh-") for name in loads)


def test_the_fingerprint_is_the_remote_prompt_by_content_without_titles():
    pixels = torch.zeros((1, 4, 4, 3))
    s = spec(["IMAGE", "INT"])
    one = gr.fingerprint_parts("http://x", "default", gr.prepare(s, {"in_0": pixels, "in_1": 3}))
    titled = gp.GroupSpec(s.title, {"1": {**s.prompt["1"], "_meta": {"title": "renamed"}}}, s.inputs, s.outputs)
    assert gr.fingerprint_parts("http://x", "default", gr.prepare(titled, {"in_0": pixels, "in_1": 3})) == one
    assert gr.fingerprint_parts("http://x", "default", gr.prepare(s, {"in_0": pixels, "in_1": 4})) != one
    assert gr.fingerprint_parts("http://x", "default", gr.prepare(s, {"in_0": pixels + 1 / 255, "in_1": 3})) != one
    assert gr.fingerprint_parts("http://x", "other", gr.prepare(s, {"in_0": pixels, "in_1": 3})) != one
