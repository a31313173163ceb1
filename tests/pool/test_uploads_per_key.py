"""Uploads for the key that runs: a file uploaded with one key is sent with the key that
creates the task too (once per key and content), so runs on keys of other accounts work
when RunningHub keeps uploads per account (the simulator's `uploads_per_account`)."""

from __future__ import annotations

import io

import numpy as np
import requests
from PIL import Image

from pool_support import FAST, make_pool
from support.clients import make_client
from support.pack import pack_module
from support.simulator import WORKFLOWS

overrides_mod = pack_module("client.overrides")
run_mod = pack_module("remote.run")
uploads = pack_module("remote.uploads")


def png(seed: int) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue(), pixels


def uploaded_with_key(sim, index: int, seed: int) -> tuple[str, np.ndarray]:
    data, pixels = png(seed)
    name = uploads.upload_all(make_client(sim, index), [uploads.PendingUpload(data, "x.png", "image", "image/png")])[0]
    return name, pixels


def run_invert(pool, name: str):
    return run_mod.run_and_wait(pool, kind="workflow", workflow_id=WORKFLOWS["invert"],
                                overrides=[overrides_mod.NodeOverride("1", "image", name)], poll_policy=FAST)


def test_a_task_on_another_accounts_key_gets_the_upload_sent_with_that_key(sim):
    sim.configure(uploads_per_account=True)
    name, pixels = uploaded_with_key(sim, 0, seed=11)
    task = run_invert(make_pool(sim, [1]), name)  # key 1 never uploaded it itself
    [out] = task.result.outputs
    got = np.asarray(Image.open(io.BytesIO(requests.get(out.url, timeout=10).content)))
    assert np.array_equal(got[:, :, :3], 255 - pixels)
    assert sim.count("upload", key=sim.keys[1]) == 1 and sim.count("create") == 1
    run_invert(make_pool(sim, [1]), name)  # once per key and content
    assert sim.count("upload", key=sim.keys[1]) == 1


def test_the_key_that_uploaded_sends_nothing_again(sim):
    sim.configure(uploads_per_account=True)
    name, _ = uploaded_with_key(sim, 2, seed=12)
    run_invert(make_pool(sim, [2]), name)
    assert sim.count("upload") == 1


def test_names_it_did_not_upload_are_passed_as_they_are(sim):
    task = run_mod.run_and_wait(make_pool(sim, [3]), kind="workflow", workflow_id=WORKFLOWS["invert"],
                                overrides=[overrides_mod.NodeOverride("1", "image", "example.png")], poll_policy=FAST)
    assert task.result.outputs and sim.count("upload") == 0


def test_kept_contents_are_bounded_by_bytes():
    kept = uploads.KeptUploads(max_bytes=10)
    for i in range(5):
        kept.keep(f"api/{i}.png", uploads.PendingUpload(b"x" * 4, "x.png", "image", "image/png"))
    assert [kept.get(f"api/{i}.png") is not None for i in range(5)] == [False, False, False, True, True]
    assert kept.get(None) is None and kept.get(["api/4.png"]) is None
