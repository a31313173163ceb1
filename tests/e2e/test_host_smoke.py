"""The test host itself: a real ComfyUI imports the pack cleanly, serves its front-end
files, and runs a real core graph through the websocket path a front end uses."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from support.comfy_host import PACK_DIR_NAME, REPO_ROOT, PromptRejected, declared_pack_node_ids

pytestmark = pytest.mark.e2e

COLOR = 0x123456  # EmptyImage's colour: r=0x12, g=0x34, b=0x56


def invert_graph(prefix: str) -> dict:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": COLOR}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def test_pack_imports_cleanly_and_lists_every_declared_node(comfy_with_pack):
    declared = declared_pack_node_ids()
    served = comfy_with_pack.assert_pack_imported_cleanly(expected_nodes=declared)
    assert sorted(served) == sorted(declared)
    for node_id in declared:
        info = comfy_with_pack.object_info(node_id)[node_id]
        assert info["python_module"] == f"custom_nodes.{PACK_DIR_NAME}"


def test_pack_web_directory_is_served(comfy_with_pack):
    web_files = sorted(p for p in (REPO_ROOT / "web").rglob("*") if p.is_file())
    assert web_files, "the pack has a web/ directory with at least its icon"
    for path in web_files:
        rel = path.relative_to(REPO_ROOT / "web").as_posix()
        r = comfy_with_pack.get(f"/extensions/{PACK_DIR_NAME}/{rel}")
        assert r.status_code == 200, rel
        assert r.content == path.read_bytes(), rel
    listed = set(comfy_with_pack.get("/extensions").json())
    for path in web_files:
        if path.suffix == ".js":
            rel = path.relative_to(REPO_ROOT / "web").as_posix()
            assert f"/extensions/{PACK_DIR_NAME}/{rel}" in listed


def test_plain_host_has_no_pack(plain_comfy):
    assert plain_comfy.pack_node_ids() == []
    assert PACK_DIR_NAME not in plain_comfy.log_text()
    assert plain_comfy.get(f"/extensions/{PACK_DIR_NAME}/icon.svg").status_code == 404


@pytest.mark.parametrize("which", ["comfy_with_pack", "plain_comfy"])
def test_core_graph_runs_through_websocket(which, request):
    host = request.getfixturevalue(which)
    result = host.run(invert_graph(f"smoke_{which}"), timeout=120)

    assert result.status == "success", result.error
    types = [e.type for e in result.events]
    assert types[0] == "status"
    for expected in ("execution_start", "executing", "executed", "execution_success"):
        assert expected in types, types
    assert types.index("execution_start") < types.index("executed") < types.index("execution_success")
    assert all(a.t <= b.t for a, b in zip(result.events, result.events[1:]))
    executed = result.events_of("executed")
    assert [e.data["node"] for e in executed] == ["3"]
    assert result.history["status"]["completed"] is True

    (image,) = result.images("3")
    assert image["type"] == "output"
    png = host.view_bytes(image["filename"], image["subfolder"], image["type"])
    assert png == (host.output_dir / image["subfolder"] / image["filename"]).read_bytes()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (48, 64, 3)
    expected = np.array([255 - 0x12, 255 - 0x34, 255 - 0x56], dtype=np.int16)
    assert np.abs(pixels - expected).max() <= 1, pixels[0, 0]


def test_invalid_graph_is_rejected_with_node_errors(plain_comfy):
    graph = invert_graph("rejected")
    graph["1"]["inputs"]["width"] = "not a number"
    with pytest.raises(PromptRejected) as caught:
        plain_comfy.queue_prompt(graph)
    assert "1" in caught.value.node_errors


def test_uploaded_image_round_trips(plain_comfy):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buf, "PNG")
    answer = plain_comfy.upload_image(buf.getvalue(), "smoke_upload.png")
    assert answer["name"] == "smoke_upload.png"
    assert (plain_comfy.input_dir / "smoke_upload.png").read_bytes() == buf.getvalue()
    assert plain_comfy.view_bytes("smoke_upload.png", "", "input") == buf.getvalue()


def test_broken_pack_is_caught(tmp_path):
    """The import check is not vacuous: a pack that raises on import fails it."""
    from support.comfy_host import ComfyHost

    (tmp_path / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    with ComfyHost(pack_source=tmp_path, name="broken") as host:
        with pytest.raises(AssertionError, match="Cannot import|IMPORT FAILED"):
            host.assert_pack_imported_cleanly()
        assert host.pack_node_ids() == []


def test_host_environment_drops_outer_runninghub_settings(monkeypatch):
    from support.comfy_host import _child_env

    monkeypatch.setenv("RUNNINGHUB_API_KEY", "real-key-of-a-developer")
    monkeypatch.setenv("RUNNINGHUB_SITE", "cn")
    env = _child_env({"RUNNINGHUB_BASE_URL": "http://127.0.0.1:1"})
    assert "RUNNINGHUB_API_KEY" not in env and "RUNNINGHUB_SITE" not in env
    assert env["RUNNINGHUB_BASE_URL"] == "http://127.0.0.1:1"
    assert _child_env({"RUNNINGHUB_API_KEY": "sim-key"})["RUNNINGHUB_API_KEY"] == "sim-key"
