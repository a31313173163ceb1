"""`uploads_per_account`: an upload is visible only to tasks of the key that made it, the
way a remote LoadImage that cannot find the file answers (433, custom_validation_failed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from raw_api import prompt_tips


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 6, 3), 77, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _create_with(api, key: str, file_name: str) -> dict:
    return api.create("invert", [("1", "image", file_name)], key=key)


def test_by_default_uploads_are_shared_between_keys(api, sim):
    name = api.upload(_png(), "a.png")["data"]["fileName"]
    assert _create_with(api, sim.keys[1], name)["code"] == 0


def test_per_account_another_key_cannot_see_the_file(api, sim):
    sim.configure(uploads_per_account=True)
    name = api.upload(_png(), "a.png")["data"]["fileName"]
    other = _create_with(api, sim.keys[1], name)
    assert other["code"] == 433
    (error,) = prompt_tips(other)["node_errors"]["1"]["errors"]
    assert error["type"] == "custom_validation_failed" and name in error["details"]
    assert sim.tasks() == []
    assert _create_with(api, sim.keys[0], name)["code"] == 0


def test_per_account_the_same_file_uploaded_by_each_key_works_for_both(api, sim):
    sim.configure(uploads_per_account=True)
    first = api.upload(_png(), "a.png")["data"]["fileName"]
    second = api.upload(_png(), "a.png", key=sim.keys[1])["data"]["fileName"]
    assert first == second
    assert _create_with(api, sim.keys[1], second)["code"] == 0
    assert api.wait(api.task_id("invert", [("1", "image", first)]))["code"] == 0


def test_per_account_sample_inputs_stay_visible_to_everyone(api, sim):
    sim.configure(uploads_per_account=True)
    assert api.create("invert", key=sim.keys[1])["code"] == 0
