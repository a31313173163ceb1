"""The native client and run_prompt against the simulator's native endpoint (rhsim with
`--comfyui`, relaying to the remote ComfyUI with the test nodes): billing counted like tasks,
per-key slots, the simulator's faults and error shapes."""

from __future__ import annotations

import io
import logging
import threading

import numpy as np
import pytest
from PIL import Image

from support import secret_scan
from support.images import png_bytes as png
from support.native_support import colour, fast_policy, journal_in, make_native, steps_prompt
from support.pack import pack_module
from support.simulator import Simulator

pytestmark = pytest.mark.e2e

errors = pack_module("client.errors")
native_mod = pack_module("client.native")
pool_mod = pack_module("client.pool")
native_run = pack_module("remote.native_run")
native_socket = pack_module("remote.native_socket")

FAST = fast_policy()


@pytest.fixture(scope="module")
def native_sim(remote_comfy):
    with Simulator(comfyui_url=remote_comfy.base_url, key_count=2, concurrency=1) as sim:
        yield sim


@pytest.fixture
def nsim(native_sim, remote_comfy):
    native_sim.reset()
    remote_comfy.wait_idle()
    yield native_sim
    native_sim.reset()


@pytest.fixture
def native(nsim):
    native_mod.forget_object_info()
    return make_native(nsim.base_url, nsim.keys[0])


def test_an_image_round_trip_is_billed_once(nsim, native):
    pixels = np.random.default_rng(11).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    name = native.upload_image(png(pixels), f"sim-{colour()}.png")
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
              "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "simnative"}}}
    statuses = []
    result = native_run.run_prompt(native, prompt, on_status=statuses.append, policy=FAST)
    (ref,) = result.files("3")
    out = np.asarray(Image.open(io.BytesIO(native.download(ref))).convert("RGB"))
    assert np.abs(out.astype(int) - (255 - pixels.astype(int))).max() <= 1
    (task,) = nsim.native_prompts(nsim.keys[0])
    assert task["promptId"] == result.prompt_id and task["status"] == "SUCCESS" and task["consumeCoins"] > 0
    assert nsim.count("native/prompt", nsim.keys[0]) == 1
    assert statuses[-1].state == "SUCCESS"


def test_an_early_socket_and_no_redundant_requests(nsim, native):
    """EarlySocket: the /ws opened before the prompt is ready is the one followed, under
    the id chosen with it; the end is read from one /history call after the socket's
    `executing` null (no /queue call, no poll before it); `executed` messages reach the
    listener with the output files before the history has them."""
    prompt = steps_prompt(2, 0.3)
    executed = []
    early = native_socket.EarlySocket.open(native, prompt, on_executed=lambda node, out: executed.append((node, out)))
    assert early.socket is not None and early.socket.wait_connected(10)
    nsim.reset_counts()
    result = native_run.run_prompt(native, prompt, policy=FAST, early=early)
    assert result.prompt_id == early.prompt_id and early.socket is None
    assert nsim.count("native/queue") == 0 and nsim.count("native/history") == 1
    assert nsim.count("native/ws") == 0 and nsim.count("native/prompt") == 1  # the early socket, not a second one
    assert [node for node, _ in executed] == ["3"] and executed[0][1]["images"] == result.outputs["3"]["images"]

    unused = native_socket.EarlySocket.open(native, prompt)
    socket = unused.socket
    unused.close()  # a run that never used it (re-attach, an error before submitting) closes it
    assert unused.socket is None and not socket.healthy


def test_progress_and_a_single_interrupt_through_the_simulator(nsim, native):
    stop = threading.Event()
    seen = []

    def on_status(status):
        seen.append(status)
        if status.remote is not None and (status.remote.value or 0) >= 2:
            stop.set()

    with pytest.raises(errors.WaitInterrupted):
        native_run.run_prompt(native, steps_prompt(200, 0.05), should_stop=stop.is_set, on_status=on_status,
                              policy=FAST)
    assert any(s.remote is not None and s.remote.node_class == "RHTestSteps" and s.remote.max == 200 for s in seen)
    assert nsim.count("native/interrupt", nsim.keys[0]) == 1
    (task,) = nsim.wait_for(lambda: [t for t in nsim.native_prompts() if t["status"] != "RUNNING"] or None,
                            timeout=30, interval=0.1)
    assert task["consumeCoins"] in (0, None, "0")  # an interrupted prompt is not billed


def test_a_lost_reply_is_found_not_resubmitted_and_billed_once(nsim, native, tmp_path):
    nsim.fault("native/prompt", "reset_after_commit")
    journal = journal_in(tmp_path)
    result = native_run.run_prompt(native, steps_prompt(1, 0.0), journal=journal, policy=FAST)
    assert nsim.count("native/prompt", nsim.keys[0]) == 1
    assert [t["promptId"] for t in nsim.native_prompts()] == [result.prompt_id]
    assert journal.ledger.entries()[0].status == "SUCCESS"


def test_a_full_key_is_waited_out_on_the_pool(nsim, native):
    """concurrency 1: a second prompt of the key gets 429 until the first ends; the pool
    waits (no prompt is made by a 429) and then sends it."""
    blocker = threading.Thread(target=native_run.run_prompt, args=(native, steps_prompt(15, 0.1)),
                               kwargs={"policy": FAST}, daemon=True)
    blocker.start()
    nsim.wait_for(lambda: nsim.native_prompts() or None, timeout=20, interval=0.05)
    lone = pool_mod.KeyPool(native.site, [native.key], client_factory=lambda _k: native, cooldown_first=0.3,
                            concurrency=2)  # believes in 2 slots: the simulator's 429 says otherwise
    result = native_run.run_prompt(lone, steps_prompt(1, 0.0), policy=FAST)
    blocker.join(30)
    assert nsim.count("native/prompt", nsim.keys[0]) >= 3  # the blocker, at least one 429, the accepted one
    assert len(nsim.native_prompts()) == 2 and result.prompt_id in {t["promptId"] for t in nsim.native_prompts()}


def test_error_shapes_of_the_simulator(nsim, native):
    with pytest.raises(errors.AuthError) as caught:
        make_native(nsim.base_url, secret_scan_key()).object_info()
    assert nsim.base_url.split("//")[1] in str(caught.value)
    with pytest.raises(errors.ValidationFailedError) as caught:
        native.submit({"1": {"class_type": "NoSuchNodeAnywhere", "inputs": {}}}, native_socket.new_prompt_id(), "c")
    assert "NoSuchNodeAnywhere" in str(caught.value)
    nsim.configure(keys={nsim.keys[0]: {"coins": 0}})  # the simulator checks the balance before ComfyUI does
    with pytest.raises(errors.InsufficientFundsError):
        native_run.run_prompt(native, steps_prompt(1, 0.0), policy=FAST)
    assert nsim.native_prompts() == []


def test_no_key_in_the_logs_with_the_simulator(nsim, native, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    try:
        nsim.fault("native/prompt", "reset_after_commit")
        result = native_run.run_prompt(native, steps_prompt(2, 0.05), journal=journal_in(tmp_path), policy=FAST)
        native.download(result.files()[0])
    finally:
        logging.getLogger("urllib3").setLevel(logging.NOTSET)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "/proxy/" in text
    secret_scan.assert_no_key(text, [native.key.secret], where="log")
    secret_scan.assert_no_key(nsim.log_text(), nsim.keys, where="simulator log")


def secret_scan_key() -> str:
    from support.simulator import random_keys

    return random_keys(1)[0]
