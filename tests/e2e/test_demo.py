"""`make demo` as a newcomer runs it: simulator + real ComfyUI, results written to a folder."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def test_demo_writes_the_remote_result(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNINGHUB_")}
    env["RH_DEMO_OUTPUT"] = str(tmp_path / "out")
    done = subprocess.run([sys.executable, "scripts/demo.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Wrote 1 result image(s) to {tmp_path / 'out'}" in done.stdout
    assert "running" in done.stdout and "done" in done.stdout
    source = np.asarray(Image.open(tmp_path / "out" / "input.png").convert("RGB")).astype(int)
    [result_path] = (tmp_path / "out").glob("runninghub_*.png")
    result = np.asarray(Image.open(result_path).convert("RGB")).astype(int)
    # The demo's remote workflow halves the image (bilinear) and inverts it.
    half = np.asarray(Image.fromarray(source.astype("uint8")).resize((256, 256), Image.BILINEAR)).astype(int)
    assert result.shape == (256, 256, 3)
    assert np.abs(result - (255 - half)).max() <= 2


def test_demo_against_the_real_service_needs_a_workflow_id(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNINGHUB_")}
    env.update(RUNNINGHUB_API_KEY="0" * 32, RH_DEMO_OUTPUT=str(tmp_path))
    done = subprocess.run([sys.executable, "scripts/demo.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "RH_DEMO_WORKFLOW_ID" in done.stderr
