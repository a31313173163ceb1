"""A pooled run over two keys of different accounts, when RunningHub keeps uploads per
account (the simulator's `uploads_per_account`): each task's key gets the uploaded files
before its create, and the right pixels come back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from support.graphs import two_image_batch_run_fetch
from support.simulator import WORKFLOWS, Simulator

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sim():
    with Simulator(key_count=2, run_seconds=1.0, concurrency=1) as s:
        yield s


@pytest.fixture(scope="module")
def host(sim, comfy_host_factory):
    return comfy_host_factory(env={"RUNNINGHUB_BASE_URL": sim.base_url, "RUNNINGHUB_API_KEY": ",".join(sim.keys),
                                   "RUNNINGHUB_KEY_CONCURRENCY": "1"})


@pytest.fixture(autouse=True)
def _fresh_each_test(fresh):
    """Every test starts from the simulator's start state on an idle ComfyUI."""


def test_a_pooled_run_over_two_accounts_returns_the_right_pixels(host, sim):
    sim.configure(uploads_per_account=True)
    result = host.run(two_image_batch_run_fetch(WORKFLOWS["invert"], save_prefix="perkey"), timeout=120)
    assert result.status == "success", result.error
    tasks = sim.tasks()
    assert len(tasks) == 2 and {t["key"] for t in tasks} == {sim.redacted(k) for k in sim.keys}  # both accounts ran
    colours = sorted(tuple(int(c) for c in np.asarray(Image.open(io.BytesIO(
        host.view_bytes(i["filename"], i["subfolder"], i["type"]))))[0, 0, :3]) for i in result.images("15"))
    assert colours == [(0, 255, 255), (255, 0, 255)]
    assert sim.count("create") == 2
