"""Output downloads against the simulator's file server over real HTTP: the run's stop and
the overall deadline hold inside the body (a server trickling one byte a second), gzip and
deflate bodies, Retry-After, and no partial file left behind."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from support.pack import pack_module
from support.simulator import WORKFLOWS

downloads = pack_module("client.downloads")
errors = pack_module("client.errors")
fetch = pack_module("remote.fetch")
polling = pack_module("client.polling")
retry = pack_module("client.retry")
stop = pack_module("client.stop")
transport = pack_module("client.transport")

FAST = polling.PollPolicy(fast_interval=0.05, fast_window=0.5, max_interval=0.3)
QUICK = retry.RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)


@pytest.fixture
def output_url(client, sim):
    handle = client.create_task(WORKFLOWS["noise"])
    return polling.wait_for_task(client, handle.task_id, policy=FAST).outputs[0].url


def download(client, url, **kw):
    sink = io.BytesIO()
    kw.setdefault("retry", QUICK)
    downloads.download_to(client.transport.session, url, sink, site=client.site, **kw)
    return sink.getvalue()


def stop_after(seconds: float):
    at = time.monotonic() + seconds
    return lambda: time.monotonic() > at


def test_a_stop_ends_a_trickling_download_at_once(client, sim, output_url):
    sim.fault("files", "slow_body", chunk=1, delay=1.0)  # one byte a second
    started = time.monotonic()
    with stop.stop_when(stop_after(0.5)), pytest.raises(errors.WaitInterrupted):
        download(client, output_url)
    assert time.monotonic() - started < 0.5 + 2.0  # generous on a loaded machine; it held 30+ s before


def test_a_stop_ends_a_download_whose_reply_is_slow_to_start(client, sim, output_url):
    sim.fault("files", "delay", seconds=20)
    started = time.monotonic()
    with stop.stop_when(stop_after(0.5)), pytest.raises(errors.WaitInterrupted):
        download(client, output_url)
    assert time.monotonic() - started < 0.5 + 2.0  # it waited for the reply's headers (20 s) before


def test_parallel_stoppable_downloads_share_one_watchdog_thread(client, sim, output_url):
    """Each body read can be cut by the run's stop; one watchdog thread watches them all
    (it was a thread per download: a fetch of fifty outputs started fifty)."""
    plain = download(client, output_url)
    sim.fault("files", "slow_body", count=8, chunk=4096, delay=0.05)
    with ThreadPoolExecutor(8) as pool:
        running = [pool.submit(download, client, output_url) for _ in range(8)]
        watchers = set()
        while not all(job.done() for job in running):
            watchers |= {(t.name, t.ident) for t in threading.enumerate() if "watch" in t.name}
            time.sleep(0.01)
        bodies = [job.result() for job in running]
    assert bodies == [plain] * 8
    assert [name for name, _ in watchers] == ["rh-read-watch"]


def test_the_deadline_holds_inside_the_body(client, sim, output_url):
    sim.fault("files", "slow_body", count=10, chunk=64, delay=0.5)
    started = time.monotonic()
    with pytest.raises(errors.DownloadError, match="limit is 2 s"):
        download(client, output_url, timeouts=transport.Timeouts(connect=2, read=5, deadline=2.0))
    assert time.monotonic() - started < 2.0 + 2.0


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_arrive_decoded(client, sim, output_url, encoding):
    plain = requests.get(output_url, timeout=5, headers={"Accept-Encoding": "identity"}).content
    sim.fault("files", "compressed", encoding=encoding)
    assert download(client, output_url) == plain
    assert sim.count("files") == 2  # taken at the first attempt, not after a retry


def test_retry_after_is_honoured_for_downloads(client, sim, output_url):
    sim.fault("files", "http_error", status=503, retry_after=1)
    started = time.monotonic()
    download(client, output_url)
    assert time.monotonic() - started >= 1.0


def test_a_failed_fetch_leaves_no_video_file(client, sim, tmp_path):
    handle = client.create_task(WORKFLOWS["mixed"])
    result = polling.wait_for_task(client, handle.task_id, policy=FAST)
    assert any(fetch.kind_of(o) == "video" for o in result.outputs)
    sim.fault("files", "reset_mid_body", count=1000)  # every download breaks after half its body
    names = iter(range(1000))
    with pytest.raises(errors.DownloadError):
        fetch.fetch_outputs(client, handle.task_id, result,
                            new_temp_file=lambda suffix: str(tmp_path / f"f{next(names)}{suffix}"))
    assert list(tmp_path.iterdir()) == []
