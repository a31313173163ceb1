"""Helpers of the native-endpoint tests: the remote ComfyUI (with test nodes, see
native_test_nodes.py), native clients with test-sized retries, prompts, journals."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .comfy_host import ComfyHost
from .pack import pack_module

NODES = Path(__file__).resolve().parent / "native_test_nodes.py"


def fast_policy():
    """Polls every 0.1 s at first, at most every 0.5 s."""
    return pack_module("client.polling").PollPolicy(fast_interval=0.1, fast_window=1.0, max_interval=0.5)


@contextmanager
def remote_comfy_host() -> Iterator[ComfyHost]:
    """A ComfyUI without the pack, with the test nodes RHTestSteps, RHTestFail and RHTestGate."""
    base = Path(tempfile.mkdtemp(prefix="rh-native-remote-"))
    for sub in ("custom_nodes", "input", "output", "user", "temp"):
        (base / sub).mkdir()
    shutil.copy(NODES, base / "custom_nodes" / "rh_native_test_nodes.py")
    host = ComfyHost(with_pack=False, name="native-remote")
    host.base_dir = base
    with host:
        assert {"RHTestSteps", "RHTestGate"} <= set(host.object_info()), host.log_tail()
        yield host


def make_native(base_url: str, key: str, **kw):
    """A NativeClient on `base_url` (the relay's or the simulator's) with short retries."""
    credentials, native, retry, sites, transport = (pack_module(f"client.{m}") for m in
                                                    ("credentials", "native", "retry", "sites", "transport"))
    site = sites.resolve_site(base_url=base_url)
    return native.NativeClient(site, credentials.ApiKey(key),
                               retry=retry.RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2),
                               timeouts=transport.Timeouts(connect=2, read=10, deadline=20),
                               lookup_delays=(0.0, 0.3, 0.6), **kw)


def colour() -> int:
    return int(np.random.default_rng().integers(0, 0xFFFFFF))  # a fresh input: no cached remote results


def steps_prompt(steps: int, seconds: float, *, fail: bool = False) -> dict:
    """EmptyImage(1) → RHTestSteps(2) [→ RHTestFail(4)] → SaveImage(3)."""
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": colour()}},
        "2": {"class_type": "RHTestSteps", "inputs": {"image": ["1", 0], "steps": steps, "seconds": seconds}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "native"}},
    }
    if fail:
        prompt["4"] = {"class_type": "RHTestFail", "inputs": {"image": ["2", 0]}}
        prompt["3"]["inputs"]["images"] = ["4", 0]
    return prompt


def journal_in(folder, seed: int = 1):
    """A run journal on a ledger in `folder` (account default, list item 0)."""
    ledger = pack_module("client.ledger").TaskLedger(Path(folder) / "tasks.sqlite3")
    return pack_module("remote.reattach").RunJournal(ledger, account="default", seed=seed, prompt_id="local-1",
                                                     node_id="7")
