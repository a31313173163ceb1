"""The client against the simulator: life cycle, every error family, drift, faults."""

import io
import time

import numpy as np
import pytest
import requests
from PIL import Image

from support.pack import pack_module
from support.simulator import SAMPLE_INPUTS, WORKFLOWS, Simulator

from support.clients import make_client

errors = pack_module("client.errors")
overrides = pack_module("client.overrides")
polling = pack_module("client.polling")
records = pack_module("client.records")
downloads = pack_module("client.downloads")
pool = pack_module("client.pool")

FAST = polling.PollPolicy(fast_interval=0.05, fast_window=0.5, max_interval=0.3)


def upload_example_png(client):
    data = (SAMPLE_INPUTS / "example.png").read_bytes()
    return data, client.upload(data, "example.png", "image")


def fetch(client, url):
    sink = io.BytesIO()
    downloads.download_to(client.transport.session, url, sink, site=client.site,
                          retry=pack_module("client.transport").RetryPolicy(attempts=4, base_delay=0.05))
    return sink.getvalue()


def test_full_life_cycle_returns_real_pixels(client, sim, no_key_in_logs):
    data, uploaded = upload_example_png(client)
    assert uploaded.file_name.startswith("api/") and uploaded.file_name.endswith(".png")
    handle = client.create_task(WORKFLOWS["invert"], [overrides.NodeOverride("1", "image", uploaded.file_name)])
    assert len(handle.task_id) == 19 and handle.state in (records.TaskState.QUEUED, records.TaskState.RUNNING)
    seen = []
    result = polling.wait_for_task(client, handle.task_id, policy=FAST, on_progress=seen.append)
    assert [o.node_id for o in result.outputs] == ["3"] and result.outputs[0].file_type == "png"
    assert result.cost.coins is not None and result.cost.coins > 0
    assert seen[-1].state is records.TaskState.SUCCESS
    out = np.asarray(Image.open(io.BytesIO(fetch(client, result.outputs[0].url))).convert("RGB"))
    src = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(out, 255 - src)
    assert client.status(handle.task_id) is records.TaskState.SUCCESS
    assert sim.count("create") == 1


def test_account_status_and_workflow_json(client):
    status = client.account_status()
    assert status.remain_coins is not None and status.current_task_counts == 0
    assert status.currency == "CNY"
    workflow = client.workflow_api_json(WORKFLOWS["invert"])
    assert workflow["2"]["class_type"] == "ImageInvert"


def test_unknown_node_and_field_are_named_803(client, sim):
    with pytest.raises(errors.InvalidNodeInfoError) as info:
        client.create_task(WORKFLOWS["invert"], [overrides.NodeOverride("99", "image", "x"),
                                                 overrides.NodeOverride("1", "imagee", "x")])
    assert info.value.code == 803
    assert sim.tasks() == []


def test_remote_validation_errors_fail_at_once_433(client):
    with pytest.raises(errors.ValidationFailedError) as info:
        client.create_task(WORKFLOWS["unsupported"])
    assert info.value.code == 433 and info.value.node_errors
    assert "CheckpointLoaderSimple" in str(info.value)


def test_remote_node_failure_names_node_and_message(client):
    handle = client.create_task(WORKFLOWS["fail"])
    with pytest.raises(errors.TaskFailedError) as info:
        polling.wait_for_task(client, handle.task_id, policy=FAST)
    exc = info.value
    assert not isinstance(exc, errors.TaskCancelledError)
    assert exc.reason.node_id == "2" and exc.reason.node_name == "SimFail"
    assert "remote node 2 (SimFail)" in str(exc) and handle.task_id in str(exc)
    assert exc.reason.exception_type and exc.reason.exception_message


def test_wrong_key_names_the_site(sim):
    client = make_client(sim)
    client.key = pack_module("client.credentials").ApiKey("f" * 28 + "9999")
    with pytest.raises(errors.AuthError) as info:
        client.account_status()
    text = str(info.value)
    assert "…9999" in text and "f" * 28 not in text
    assert sim.base_url.split("//")[1] in text and "RUNNINGHUB_BASE_URL" in text


def test_unknown_workflow_380_and_unknown_task_807(client):
    with pytest.raises(errors.WorkflowNotFoundError):
        client.create_task("1234567890123456789")
    with pytest.raises(errors.TaskNotFoundError):
        client.outputs("1234567890123456789")


def test_insufficient_coins_416(client, sim):
    sim.configure(keys={sim.keys[0]: {"coins": 0}})
    with pytest.raises(errors.InsufficientFundsError, match="top up"):
        client.create_task(WORKFLOWS["empty"])


def test_upload_over_the_limit_809(client, sim):
    sim.configure(max_upload_mb=0.05)
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    with pytest.raises(errors.UploadTooLargeError) as info:
        client.upload(buf.getvalue(), "noise.png", "image")
    # RunningHub's 809 names no limit: the error gives the file's size and the documented limits
    assert "noise.png (0.1 MB)" in str(info.value) and "30 MB" in str(info.value) and "10 MB" in str(info.value)
    assert "smaller" in str(info.value)


def test_500_then_200_on_outputs_succeeds(client, sim):
    handle = client.create_task(WORKFLOWS["empty"])
    polling.wait_for_task(client, handle.task_id, policy=FAST)
    sim.fault("outputs", "http_error", count=2, status=500)
    state = client.outputs(handle.task_id)
    assert state.state is records.TaskState.SUCCESS
    assert sim.count("outputs") >= 3


def test_retry_after_is_honoured(sim):
    slept = []
    client = make_client(sim, sleep=lambda s: slept.append(s))
    sim.fault("accountStatus", "http_error", count=1, status=503, retry_after=1)
    client.account_status()
    assert sum(slept) == pytest.approx(1.0) and max(slept) <= 0.2  # in ticks that check for a stop


@pytest.mark.parametrize("kind", ["malformed_json", "html_200"])
def test_non_protocol_replies_are_protocol_errors_not_success_nor_endless(client, sim, kind):
    handle = client.create_task(WORKFLOWS["empty"])
    sim.fault("outputs", kind, count=50)
    started = time.monotonic()
    with pytest.raises((errors.ProtocolError, errors.TransportError)) as info:
        polling.wait_for_task(client, handle.task_id, policy=FAST)
    assert time.monotonic() - started < 15
    assert handle.task_id in str(info.value) and "RH Fetch Outputs" in str(info.value)
    assert isinstance(info.value, errors.ProtocolError)


def test_lost_create_reply_is_never_resubmitted(client, sim):
    sim.fault("create", "reset_after_commit", count=1)
    with pytest.raises(errors.SubmissionUncertainError) as info:
        client.create_task(WORKFLOWS["empty"])
    assert "did not resubmit" in str(info.value)
    assert sim.count("create") == 1
    assert len(sim.tasks()) == 1  # the task exists (and is billed) on the remote side


def test_create_5xx_is_not_resubmitted_either(client, sim):
    sim.fault("create", "http_error", count=1, status=502)
    with pytest.raises(errors.SubmissionUncertainError):
        client.create_task(WORKFLOWS["empty"])
    assert sim.count("create") == 1


def test_create_retries_when_the_request_never_left(sim):
    """Connection refused: nothing was sent, so a retry cannot bill twice."""
    client = make_client(sim)
    dead = pack_module("client.sites").resolve_site(base_url="http://127.0.0.1:9")
    client.transport.site = dead
    with pytest.raises(errors.TransportError, match="gave up after 4 attempt"):
        client.create_task(WORKFLOWS["empty"])


def test_reset_mid_download_recovers_the_whole_body(client, sim):
    handle = client.create_task(WORKFLOWS["noise"])
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    url = result.outputs[0].url
    whole = requests.get(url, timeout=5).content
    sim.fault("files", "reset_mid_body", count=2)
    assert fetch(client, url) == whole


def test_expired_output_url_says_so(client, sim):
    handle = client.create_task(WORKFLOWS["empty"])
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    sim.expire_outputs(handle.task_id)
    with pytest.raises(errors.DownloadError, match="expire"):
        fetch(client, result.outputs[0].url)


def test_download_size_cap(client):
    handle = client.create_task(WORKFLOWS["empty"])
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    with pytest.raises(errors.DownloadError, match="over the limit"):
        downloads.download_to(client.transport.session, result.outputs[0].url, io.BytesIO(), site=client.site,
                              max_bytes=10)


def test_capacity_421_waits_then_succeeds_without_extra_tasks(client, sim):
    sim.configure(concurrency=1, queue_depth=0, run_seconds=0.8)
    first = client.create_task(WORKFLOWS["empty"])
    with pytest.raises(errors.CapacityError):
        client.create_task(WORKFLOWS["empty"])
    creates_before = sim.count("create")
    one_key = pool.KeyPool.of_client(client, cooldown_first=0.2, cooldown_max=0.4)
    lease, second = one_key.submit(lambda c: c.create_task(WORKFLOWS["empty"]), budget_seconds=20)
    lease.release()
    assert sim.count("create") - creates_before >= 2  # at least one more 421 before the task was made
    assert second.task_id != first.task_id
    assert len(sim.tasks()) == 2  # 421 replies created nothing


def test_capacity_budget_runs_out_with_a_clear_error(client, sim):
    sim.configure(concurrency=1, queue_depth=0, run_seconds=5)
    client.create_task(WORKFLOWS["empty"])
    with pytest.raises(errors.CapacityError, match="nothing was created"):
        pool.KeyPool.of_client(client, cooldown_first=0.2, cooldown_max=0.2).submit(
            lambda c: c.create_task(WORKFLOWS["empty"]), budget_seconds=0.6)
    assert len(sim.tasks()) == 1


def test_interrupt_cancels_a_running_task_once(client, sim):
    sim.configure(run_seconds=30)
    handle = client.create_task(WORKFLOWS["empty"])
    started = time.monotonic()
    stop_at = started + 0.6
    with pytest.raises(errors.WaitInterrupted, match="cancelled"):
        polling.wait_for_task(client, handle.task_id, policy=FAST, should_stop=lambda: time.monotonic() > stop_at)
    assert time.monotonic() - stop_at < 1.0  # honoured within about a second
    assert sim.count("cancel") == 1
    state = client.outputs(handle.task_id)
    assert state.state is records.TaskState.FAILED and isinstance(state.failure, errors.TaskCancelledError)


def test_cancel_of_queued_task(client, sim):
    sim.configure(concurrency=1, queue_depth=3, run_seconds=30)
    client.create_task(WORKFLOWS["empty"])
    queued = client.create_task(WORKFLOWS["empty"])
    assert client.outputs(queued.task_id).state is records.TaskState.QUEUED
    client.cancel(queued.task_id)
    assert client.outputs(queued.task_id).state is records.TaskState.FAILED


def test_queued_and_running_budgets(client, sim):
    sim.configure(concurrency=1, queue_depth=3, run_seconds=30)
    client.create_task(WORKFLOWS["empty"])
    queued = client.create_task(WORKFLOWS["empty"])
    policy = polling.with_budgets(FAST, queued=0.5)
    with pytest.raises(errors.TaskTimeoutError, match="queued") as info:
        polling.wait_for_task(client, queued.task_id, policy=policy)
    assert queued.task_id in str(info.value) and "RH Fetch Outputs" in str(info.value)
    assert sim.count("cancel") == 0  # the task is left as it was: nothing lost


def test_legacy_drift_shapes(client, sim):
    sim.configure(legacy=True, run_seconds=0.5)
    status = client.account_status()
    assert status.remain_coins is not None and status.current_task_counts == 0
    handle = client.create_task(WORKFLOWS["empty"])
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    assert len(result.outputs) == 2
    failing = client.create_task(WORKFLOWS["fail"])
    with pytest.raises(errors.TaskFailedError):
        polling.wait_for_task(client, failing.task_id, policy=FAST)


def test_success_with_nothing_saved(client):
    handle = client.create_task(WORKFLOWS["preview_only"])
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    assert result.outputs == []


def test_ai_app_run(client):
    handle = client.run_ai_app(int(WORKFLOWS["empty"]), [])
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    assert len(result.outputs) == 2
    with pytest.raises(errors.WorkflowNotFoundError):
        client.run_ai_app("1234567890123456789", [])


def test_site_drift_ai_currency():
    with Simulator(site="ai") as sim:
        assert make_client(sim).account_status().currency == "USD"


def test_create_status_counts_as_queued(client, sim):
    """RunningHub documents CREATE (a task that exists but is not queued yet): the client
    treats it as QUEUED everywhere and waits the task out."""
    sim.configure(create_seconds=0.5)
    handle = client.create_task(WORKFLOWS["empty"])
    assert handle.state is records.TaskState.QUEUED
    assert client.status(handle.task_id) is records.TaskState.QUEUED
    seen = []
    result = polling.wait_for_task(client, handle.task_id, initial_state=handle.state, policy=FAST,
                                   on_progress=seen.append)
    assert len(result.outputs) == 2 and seen[0].state is records.TaskState.QUEUED
    assert records.TaskState.parse("CREATE") is records.TaskState.QUEUED
