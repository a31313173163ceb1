"""The native-endpoint client (client/native.py) and run_prompt (remote/native_run.py) over
real HTTP: a real ComfyUI behind `/proxy/{key}/…` (support/native_relay.py), with two test
nodes (support/native_test_nodes.py) for steps and failures."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import traceback

import numpy as np
import pytest
from PIL import Image

from support import secret_scan
from support.comfy_host import ComfyHost
from support.native_relay import NativeRelay
from support.images import png_bytes as png
from support.native_support import colour, fast_policy, journal_in, make_native, steps_prompt
from support.pack import pack_module
from support.simulator import random_keys

pytestmark = pytest.mark.e2e

errors = pack_module("client.errors")
ledger_mod = pack_module("client.ledger")
native_mod = pack_module("client.native")
pool_mod = pack_module("client.pool")
native_run = pack_module("remote.native_run")
native_socket = pack_module("remote.native_socket")
native_record = pack_module("remote.native_record")
native_follow = pack_module("remote.native_follow")

FAST = fast_policy()


@pytest.fixture(scope="module")
def keys():
    return random_keys(2)


@pytest.fixture(scope="module")
def relay(remote_comfy, keys):
    with NativeRelay(remote_comfy.base_url, keys[:1]) as relay:
        yield relay


@pytest.fixture
def native(relay, remote_comfy, keys):
    relay.reset()
    remote_comfy.wait_idle()
    native_mod.forget_object_info()
    return make_native(relay.base_url, keys[0])


def prompts_of(host: ComfyHost, client_id: str) -> list[str]:
    """Ids of the prompts of `client_id` the remote has (history, running, pending)."""
    found = [pid for pid, entry in host.history().items()
             if entry.get("prompt", [None, None, None, {}])[3].get("client_id") == client_id]
    queue = host.queue()
    for item in queue["queue_running"] + queue["queue_pending"]:
        if item[3].get("client_id") == client_id:
            found.append(item[1])
    return found


# -- the client ------------------------------------------------------------------------------

def test_upload_submit_history_download_a_real_image(native, relay, remote_comfy):
    pixels = np.random.default_rng(7).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    name = native.upload_image(png(pixels), f"native-{colour()}.png")
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
              "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "native"}}}
    statuses = []
    result = native_run.run_prompt(native, prompt, on_status=statuses.append, policy=FAST)
    assert result.native is native and not result.reattached
    (ref,) = result.files("3")
    out = np.asarray(Image.open(io.BytesIO(native.download(ref))).convert("RGB"))
    assert np.abs(out.astype(int) - (255 - pixels.astype(int))).max() <= 1
    assert result.outputs["3"]["images"][0]["filename"] == ref.filename
    assert statuses[0].state == "SUBMITTING" and statuses[-1].state == "SUCCESS"
    assert relay.count("POST", "/prompt") == 1 and relay.count("GET", "/view") == 1
    assert remote_comfy.history(result.prompt_id)["status"]["status_str"] == "success"


def test_object_info_is_cached_per_site_and_key(native, relay):
    info = native.object_info()
    assert "RHTestSteps" in info and "ImageInvert" in info
    assert native.object_info() is info
    assert relay.count("GET", "/object_info") == 1


def test_queue_and_history_say_where_a_prompt_is(native, remote_comfy):
    prompt_id = native_socket.new_prompt_id()
    submitted = native.submit(steps_prompt(20, 0.05), prompt_id, "rh-test-client")
    assert submitted.prompt_id == prompt_id and not submitted.recovered
    assert native.find(prompt_id).place in (native_mod.Place.QUEUED, native_mod.Place.RUNNING)
    remote_comfy.wait_idle()
    done = native.find(prompt_id)
    assert done.place is native_mod.Place.DONE and done.history["status"]["status_str"] == "success"
    assert native.find(native_socket.new_prompt_id()).place is native_mod.Place.UNKNOWN


# -- progress, failure, refusals ---------------------------------------------------------------

def test_progress_names_the_remote_node_and_its_steps(native):
    statuses = []
    native_run.run_prompt(native, steps_prompt(10, 0.15), on_status=statuses.append, policy=FAST)
    remote = [s.remote for s in statuses if s.remote is not None]
    stepping = [r for r in remote if r.value is not None]
    assert stepping, statuses
    assert {r.node_class for r in stepping} == {"RHTestSteps"} and {r.node_id for r in stepping} == {"2"}
    assert stepping[-1].max == 10 and len({r.value for r in stepping}) >= 3
    assert all(r.nodes_total == 3 for r in remote) and max(r.nodes_done for r in remote) >= 1
    assert "RHTestSteps (#2)" in next(s.line for s in statuses if s.remote and s.remote.value)
    states = [s.state for s in statuses]
    assert "RUNNING" in states and states[-1] == "SUCCESS"


def test_a_socket_that_keeps_dropping_leaves_the_wait_to_history_polls(native, relay):
    relay.ws_drop_after = 2  # `status`, then one message of the prompt: then the socket closes, again and again
    statuses = []
    result = native_run.run_prompt(native, steps_prompt(8, 0.25), on_status=statuses.append, policy=FAST)
    assert result.files("3") and statuses[-1].state == "SUCCESS"
    assert relay.count("GET", "/ws") >= 2  # reconnected, then gave up
    assert relay.count("GET", "/queue") >= 5  # polled on the schedule instead of the heartbeat
    assert "RUNNING" in [s.state for s in statuses]


def test_the_end_is_read_from_history_once_settled_or_after_a_grace(native, relay):
    """One /history call after the socket's `executing` null, no /queue call; a remote that
    never sends `executing` null is read SETTLE_GRACE after its execution_success."""
    result = native_run.run_prompt(native, steps_prompt(2, 0.2), policy=FAST)
    assert result.files("3") and relay.count("GET", "/queue") == 0
    assert relay.count("GET", f"/history/{result.prompt_id}") == 1
    relay.reset()
    relay.ws_hide = lambda msg: msg.get("type") == "executing" and msg.get("data", {}).get("node") is None
    started = time.monotonic()
    result = native_run.run_prompt(native, steps_prompt(2, 0.2), policy=FAST)
    assert result.files("3") and relay.count("GET", "/queue") == 0
    assert relay.count("GET", f"/history/{result.prompt_id}") == 1
    assert time.monotonic() - started >= native_follow.SETTLE_GRACE


def test_a_success_heard_whole_on_the_socket_is_not_read_again_from_history(native, relay, remote_comfy, tmp_path):
    """Given the outputs it needs, a run whose socket (connected before the submit, never
    dropped) heard `execution_success` and those outputs reads no /history: the result and
    the ledger hold what ComfyUI wrote there. A needed output the socket did not bring makes
    it read the history once, as before."""
    journal = journal_in(tmp_path)
    result = native_run.run_prompt(native, steps_prompt(2, 0.2), policy=FAST, needed_outputs=["3"], journal=journal)
    assert relay.count("GET", f"/history/{result.prompt_id}") == 0 and relay.count("GET", "/queue") == 0
    assert result.outputs == remote_comfy.history(result.prompt_id)["outputs"] and result.files("3")
    (entry,) = journal.ledger.entries()
    assert entry.status == "SUCCESS" and native_record.outputs_from_ledger(entry.outputs) == result.outputs
    relay.reset()
    relay.ws_hide = lambda msg: msg.get("type") == "executed"
    result = native_run.run_prompt(native, steps_prompt(2, 0.2), policy=FAST, needed_outputs=["3"])
    assert result.files("3") and relay.count("GET", f"/history/{result.prompt_id}") == 1


def test_a_key_echoed_in_a_heard_output_is_scrubbed(native, relay, keys, tmp_path):
    """The socket's `executed` outputs are network text, as the history is: a remote echoing
    the key in an output (which becomes a node's value and the ledger's record) has it
    scrubbed there too."""
    def echo_key(msg):
        if msg.get("type") == "executed":
            msg["data"]["output"]["text"] = [f"the key was {keys[0]}"]
        return msg

    relay.ws_rewrite = echo_key
    journal = journal_in(tmp_path)
    result = native_run.run_prompt(native, steps_prompt(1, 0.05), policy=FAST, needed_outputs=["3"], journal=journal)
    assert relay.count("GET", f"/history/{result.prompt_id}") == 0  # the outcome was heard on the socket
    assert result.outputs["3"]["text"][0].startswith("the key was ") and result.files("3")
    assert keys[0] not in json.dumps(result.outputs) and keys[0] not in json.dumps(journal.ledger.entries()[0].outputs)


def test_the_prompt_sent_is_the_one_ready_gives_once_the_run_is_recorded(native, relay, remote_comfy, tmp_path):
    """`ready()` (e.g. the uploads' names) is asked for after the ledger entry is written and
    before POST /prompt: what it gives is sent; its error sends nothing and drops the entry."""
    journal = journal_in(tmp_path)
    planned, final = steps_prompt(1, 0.05), steps_prompt(1, 0.05)
    seen = []

    def ready():
        seen.append([e.status for e in journal.ledger.entries()])
        return final

    result = native_run.run_prompt(native, planned, policy=FAST, journal=journal, ready=ready)
    assert seen == [["SUBMITTING"]] and relay.count("POST", "/prompt") == 1
    assert remote_comfy.history(result.prompt_id)["prompt"][2]["1"]["inputs"]["color"] == final["1"]["inputs"]["color"]
    relay.reset()
    other = journal_in(tmp_path / "other")

    def fails():
        raise errors.TransportError("the upload of in_0 failed")

    with pytest.raises(errors.TransportError, match="upload of in_0"):
        native_run.run_prompt(native, steps_prompt(1, 0.05), policy=FAST, journal=other, ready=fails)
    assert relay.count("POST", "/prompt") == 0 and other.ledger.entries() == []


def test_a_remote_failure_names_the_node_and_its_exception(native, tmp_path):
    journal = journal_in(tmp_path)
    with pytest.raises(errors.TaskFailedError) as caught:
        native_run.run_prompt(native, steps_prompt(1, 0.0, fail=True), journal=journal, policy=FAST)
    text = str(caught.value)
    assert "remote node 4 (RHTestFail)" in text and "deliberate failure of the native endpoint test" in text
    assert caught.value.reason.exception_type == "RuntimeError"
    (entry,) = journal.ledger.entries()
    assert entry.status == "FAILED" and entry.kind == "native" and entry.task_id == caught.value.task_id


def test_a_refused_prompt_names_the_remote_nodes_and_bills_nothing(native, relay, tmp_path):
    prompt = steps_prompt(1, 0.0)
    prompt["1"]["inputs"]["width"] = "wide"
    journal = journal_in(tmp_path)
    with pytest.raises(errors.ValidationFailedError) as caught:
        native_run.run_prompt(native, prompt, journal=journal, policy=FAST)
    assert "node 1 (EmptyImage)" in str(caught.value) and "width" in str(caught.value)
    assert "1" in caught.value.node_errors
    assert journal.ledger.entries() == []  # nothing was queued: no entry left
    assert relay.count("POST", "/prompt") == 1


def test_unknown_key_and_no_balance_are_clear_errors(native, relay, keys):
    stranger = make_native(relay.base_url, keys[1])
    with pytest.raises(errors.AuthError) as caught:
        stranger.queue()
    assert "refused the key" in str(caught.value) and stranger.site.host in str(caught.value)
    relay.fault("POST", "/prompt", "402")
    with pytest.raises(errors.InsufficientFundsError) as caught:
        native_run.run_prompt(native, steps_prompt(1, 0.0), policy=FAST)
    assert "Top up" in str(caught.value)


def test_too_many_prompts_is_waited_out_without_a_second_prompt(native, relay, remote_comfy):
    relay.fault("POST", "/prompt", "429")
    waits = []
    pool = pool_mod.KeyPool(native.site, [native.key], client_factory=lambda _k: native, cooldown_first=0.2)
    result = native_run.run_prompt(pool, steps_prompt(1, 0.0), policy=FAST, on_wait=waits.append)
    assert relay.count("POST", "/prompt") == 2  # refused once (nothing queued), then accepted
    assert prompts_of(remote_comfy, native_socket.client_id_for(result.prompt_id)) == [result.prompt_id]


# -- cancel ----------------------------------------------------------------------------------

def test_cancel_of_a_running_prompt_interrupts_it_exactly_once(native, relay, remote_comfy, tmp_path):
    stop = threading.Event()
    journal = journal_in(tmp_path)

    def on_status(status):
        if status.remote is not None and (status.remote.value or 0) >= 2:
            stop.set()

    started = time.monotonic()
    with pytest.raises(errors.WaitInterrupted) as caught:
        native_run.run_prompt(native, steps_prompt(200, 0.05), journal=journal, should_stop=stop.is_set,
                              on_status=on_status, policy=FAST)
    assert time.monotonic() - started < 8
    assert "interrupted" in str(caught.value)
    remote_comfy.wait_idle()
    assert relay.count("POST", "/interrupt") == 1 and relay.count("POST", "/queue") == 0
    prompt_id = caught.value.task_id
    messages = [m[0] for m in remote_comfy.history(prompt_id)["status"]["messages"]]
    assert "execution_interrupted" in messages
    (entry,) = journal.ledger.entries()
    assert entry.status == "CANCEL" and entry.task_id == prompt_id


def test_cancel_of_a_queued_prompt_deletes_it_without_an_interrupt(native, relay, remote_comfy):
    blocker = remote_comfy.queue_prompt(steps_prompt(40, 0.05))  # keeps the remote busy
    stop = threading.Event()

    def on_status(status):
        if status.state == "QUEUED":
            stop.set()

    with pytest.raises(errors.WaitInterrupted) as caught:
        native_run.run_prompt(native, steps_prompt(1, 0.0), should_stop=stop.is_set, on_status=on_status,
                              policy=FAST)
    assert "taken off the remote queue" in str(caught.value)
    remote_comfy.interrupt(blocker)
    remote_comfy.wait_idle()
    assert relay.count("POST", "/queue") == 1 and relay.count("POST", "/interrupt") == 0
    assert remote_comfy.history(caught.value.task_id) == {}  # it never ran


def test_a_stop_whose_interrupt_fails_keeps_the_prompt_for_the_next_run(native, relay, remote_comfy, tmp_path):
    """The remote's interrupt keeps failing when the user stops: the prompt may run on and
    bill, so its entry stays as it was and the next run follows it instead of sending another."""
    stop = threading.Event()
    journal = journal_in(tmp_path)
    prompt = steps_prompt(30, 0.05)

    def on_status(status):
        if status.state == "RUNNING" and not stop.is_set():
            relay.fault("POST", "/interrupt", "500", times=20)
            stop.set()

    with pytest.raises(errors.WaitInterrupted) as caught:
        native_run.run_prompt(native, prompt, journal=journal, should_stop=stop.is_set, on_status=on_status,
                              policy=FAST)
    assert not caught.value.cancelled and "task panel" in str(caught.value)
    assert relay.count("POST", "/interrupt") >= 1
    (entry,) = journal.ledger.entries()
    assert entry.status in ("QUEUED", "RUNNING") and entry.task_id == caught.value.task_id
    relay.reset()
    result = native_run.run_prompt(native, prompt, journal=journal, policy=FAST)
    assert result.reattached and result.prompt_id == entry.task_id and relay.count("POST", "/prompt") == 0
    assert journal.ledger.get(entry.entry).status == "SUCCESS"


def test_a_queued_prompt_that_may_have_started_during_its_delete_is_interrupted_too(native, relay, remote_comfy):
    """Taken off the queue, but the remote cannot say where it is now: it may have started
    in between, so the interrupt goes out as well (it does nothing to a prompt not running)."""
    blocker = remote_comfy.queue_prompt(steps_prompt(40, 0.05))  # keeps the remote busy
    stop = threading.Event()

    def on_status(status):
        if status.state == "QUEUED" and not stop.is_set():
            relay.fault("GET", "/queue", "pass")  # the lookup before the delete
            relay.fault("GET", "/queue", "500", times=20)  # the lookups after it
            stop.set()

    with pytest.raises(errors.WaitInterrupted) as caught:
        native_run.run_prompt(native, steps_prompt(1, 0.0), should_stop=stop.is_set, on_status=on_status,
                              policy=FAST)
    assert caught.value.cancelled and "interrupted" in str(caught.value)
    remote_comfy.interrupt(blocker)
    remote_comfy.wait_idle()
    assert relay.count("POST", "/queue") == 1 and relay.count("POST", "/interrupt") == 1
    assert remote_comfy.history(caught.value.task_id) == {}  # it never ran


# -- lost replies and re-attach ----------------------------------------------------------------

@pytest.mark.parametrize("fault", ["drop", "500_after"])
def test_a_lost_prompt_reply_is_resolved_by_lookup_not_resubmitted(native, relay, remote_comfy, tmp_path, fault,
                                                                   caplog):
    caplog.set_level(logging.INFO)
    relay.fault("POST", "/prompt", fault)
    journal = journal_in(tmp_path)
    result = native_run.run_prompt(native, steps_prompt(2, 0.05), journal=journal, policy=FAST)
    assert "instead of sending it again" in caplog.text and "was accepted after all" in caplog.text
    assert relay.count("POST", "/prompt") == 1
    assert prompts_of(remote_comfy, native_socket.client_id_for(result.prompt_id)) == [result.prompt_id]
    (entry,) = journal.ledger.entries()
    assert entry.status == "SUCCESS" and entry.task_id == result.prompt_id


def test_a_submission_that_never_arrived_stays_uncertain_then_the_next_run_checks(native, relay, tmp_path):
    relay.fault("POST", "/prompt", "500")  # answered 500 without queueing anything
    journal = journal_in(tmp_path)
    prompt = steps_prompt(1, 0.0)
    with pytest.raises(errors.SubmissionUncertainError) as caught:
        native_run.run_prompt(native, prompt, journal=journal, policy=FAST)
    assert "did not resubmit" in str(caught.value)
    assert relay.count("POST", "/prompt") == 1
    (entry,) = journal.ledger.entries()
    assert entry.status == "MAY_EXIST" and entry.task_id
    # The next run asks the remote about that prompt id, finds nothing, and sends a new one.
    result = native_run.run_prompt(native, prompt, journal=journal, policy=FAST)
    assert result.prompt_id != entry.task_id and relay.count("POST", "/prompt") == 2
    assert journal.ledger.get(entry.entry).status == "FAILED"


def test_the_same_run_again_reuses_the_finished_prompt(native, relay, tmp_path):
    journal = journal_in(tmp_path)
    prompt = steps_prompt(1, 0.0)
    first = native_run.run_prompt(native, prompt, journal=journal, policy=FAST)
    again = native_run.run_prompt(native, prompt, journal=journal, policy=FAST)
    assert again.reattached and again.prompt_id == first.prompt_id and again.outputs == first.outputs
    assert relay.count("POST", "/prompt") == 1
    other_seed = native_run.run_prompt(native, prompt, journal=journal_in(tmp_path, seed=2), policy=FAST)
    assert not other_seed.reattached and relay.count("POST", "/prompt") == 2


def test_a_run_after_a_restart_follows_the_running_prompt(native, relay, remote_comfy, tmp_path):
    """An earlier process recorded and sent the prompt, then died: the ledger holds it."""
    journal = journal_in(tmp_path)
    prompt = steps_prompt(15, 0.1)
    prompt_id = native_socket.new_prompt_id()
    earlier = ledger_mod.TaskLedger(journal.ledger.path)  # another owner: the process before the restart
    fingerprint = native_record.fingerprint_for(native.site.base_url, journal, prompt, None)
    entry = earlier.begin(fingerprint, key_hint=native.key.hint, task_id=prompt_id)
    native.submit(prompt, prompt_id, native_socket.client_id_for(prompt_id))
    earlier.created(entry, prompt_id)
    relay.reset()
    statuses = []
    result = native_run.run_prompt(native, prompt, journal=journal, on_status=statuses.append, policy=FAST)
    assert result.reattached and result.prompt_id == prompt_id and result.files("3")
    assert relay.count("POST", "/prompt") == 0
    assert any(s.remote is not None and s.remote.node_class == "RHTestSteps" for s in statuses)
    assert journal.ledger.get(entry).status == "SUCCESS"


# -- the key stays secret ----------------------------------------------------------------------

def test_the_key_is_in_no_log_record_and_no_exception(native, relay, remote_comfy, caplog, tmp_path):
    key = native.key.secret
    secret_scan.remember([key])
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "aiohttp", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    texts: list[str] = []

    def keep(exc: BaseException) -> None:
        texts.append(str(exc))
        texts.append("".join(traceback.format_exception(exc)))

    try:
        native.upload_image(png(np.zeros((4, 4, 3), np.uint8)), "secret-test.png")
        result = native_run.run_prompt(native, steps_prompt(3, 0.05), journal=journal_in(tmp_path), policy=FAST)
        native.download(result.files()[0])
        relay.fault("POST", "/prompt", "drop")
        native_run.run_prompt(native, steps_prompt(1, 0.0), policy=FAST)
        for call in (lambda: native.download({"filename": "missing.png", "type": "output"}),
                     lambda: native_run.run_prompt(native, steps_prompt(1, 0.0, fail=True), policy=FAST),
                     lambda: make_native("http://127.0.0.1:9", key).queue(),  # nothing listens
                     lambda: make_native(relay.base_url.replace("127.0.0.1", "localhost"), key + "x").queue(),
                     lambda: native.history("../../etc"),
                     lambda: native.submit({"1": {"class_type": "Nope", "inputs": {}}}, "p", "c")):
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - every failure's text is what is checked
                keep(exc)
        for fault in ("drop", "500", "429", "402"):
            relay.fault("POST", "/prompt", fault)
            try:
                native.submit(steps_prompt(1, 0.0), native_socket.new_prompt_id(), "c")
            except Exception as exc:  # noqa: BLE001
                keep(exc)
    finally:
        for name in ("urllib3", "requests", "aiohttp", "asyncio"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        remote_comfy.wait_idle()
    assert len(texts) >= 10
    records = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any("/proxy/" in r for r in records), "urllib3's DEBUG request lines were not captured"
    for text in records + texts:
        secret_scan.assert_no_key(text, [key], where="log record or exception")
    for text in texts:
        assert "/proxy/" not in text, f"a native URL in an exception: {text[:300]}"
    assert key not in repr(native) and key not in repr(native.key)
    ledger_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("tasks.sqlite3*"))
    assert ledger_bytes and not secret_scan.leaks(ledger_bytes.decode("latin-1"), [key])
