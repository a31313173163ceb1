"""The pack on a ComfyUI older than it supports: ComfyUI's own log would only say the pack
lacks NODE_CLASS_MAPPINGS (before V3 entry points) or the nodes would fail at random;
the pack's import says which ComfyUI it needs and how to update."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from support.pack import REPO_ROOT

IMPORT_AS_COMFYUI_DOES = textwrap.dedent("""
    import importlib.util, logging, sys
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spec = importlib.util.spec_from_file_location("custom_nodes.rh", {init!r}, submodule_search_locations=[{root!r}])
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_nodes.rh"] = module
    spec.loader.exec_module(module)
    print("imported", flush=True)
""")


def import_on(tmp_path, version: str | None) -> str:
    """The log of importing the pack in a process whose `comfyui_version` says `version`
    (ComfyUI's root holds that file; None: no such file, as outside ComfyUI)."""
    if version is not None:
        (tmp_path / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    script = IMPORT_AS_COMFYUI_DOES.format(init=str(REPO_ROOT / "__init__.py"), root=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr
    return done.stderr


def test_an_older_comfyui_gets_told_what_to_update(tmp_path):
    log = import_on(tmp_path, "0.3.43")
    assert "ERROR runninghub_bridge: RunningHub Bridge needs ComfyUI 0.3.75 or newer, and this ComfyUI is 0.3.43" in log
    assert "Update ComfyUI" in log


@pytest.mark.parametrize("version", ["0.3.75", "0.3.76", "0.33.0", "1.0.0-rc1", None])
def test_a_supported_comfyui_or_none_hears_nothing(tmp_path, version):
    assert "needs ComfyUI" not in import_on(tmp_path, version)


def test_the_version_checked_is_the_one_the_registry_is_told(tmp_path):
    """pyproject.toml's requires-comfyui (what the Comfy Registry and ComfyUI-Manager read)
    and the version the import checks are one number."""
    import tomllib

    required = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    assert required == ">=0.3.75" and "needs ComfyUI 0.3.75 or newer" in import_on(tmp_path, "0.3.74")
