"""The Comfy Registry package, built as a publisher builds it: comfy-cli (from PyPI, in a
venv of its own that scripts/bootstrap.sh sets up) validates pyproject.toml and packs the
git-tracked files minus .comfyignore. The package holds only what runs inside ComfyUI."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from support.comfy_host import REPO_ROOT, bootstrap_value

# What ComfyUI loads (the layers, web/, locales/, the template), and what a package must
# carry (metadata, the runtime requirements, the README and the licence).
RUNTIME = {"__init__.py", "client", "host", "media", "nodes", "remote", "web", "locales",
           "example_workflows", "pyproject.toml", "requirements.txt", "README.md", "LICENSE"}
STANDARD_URL_KEYS = {"Homepage", "Documentation", "Repository", "Issues"}  # what comfy-cli reads


def repo_files() -> list[str]:
    """The files a commit of the working tree would hold (tracked, plus new unignored ones)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return sorted(f for f in out.splitlines() if (REPO_ROOT / f).is_file())


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A git repository holding the working tree's files, where comfy-cli can run."""
    root = tmp_path_factory.mktemp("registry") / "pack"
    for name in repo_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"]):
        subprocess.run(cmd, cwd=root, check=True)
    return root


def comfy(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    home = checkout.parent / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "DO_NOT_TRACK": "1"}
    return subprocess.run([bootstrap_value("COMFY_CLI"), "--skip-prompt", *args], cwd=checkout, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def test_comfy_node_validate_passes(checkout):
    result = comfy(checkout, "node", "validate")
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "All validation checks passed" in said, said
    assert "warning" not in said.lower(), said


def test_the_package_holds_only_what_runs_in_comfyui(checkout):
    result = comfy(checkout, "node", "pack")
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(checkout / "node.zip") as package:
        packed = sorted(package.namelist())
    expected = [f for f in repo_files() if f.split("/")[0] in RUNTIME]
    assert packed == expected
    assert "nodes/__init__.py" in packed and "web/js/runninghub.js" in packed
    assert "example_workflows/RunningHub_upload_run_fetch.jpg" in packed


def test_registry_metadata():
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    comfy_meta = meta["tool"]["comfy"]
    assert comfy_meta["Icon"].startswith("https://"), "the Registry shows an icon from a URL only"
    assert set(meta["project"]["urls"]) == STANDARD_URL_KEYS
    assert comfy_meta["requires-comfyui"] == ">=0.3.75", "the oldest ComfyUI the matrix tests"
    assert "comfyui" not in meta["project"]["name"].lower(), "the Registry advises against it"
