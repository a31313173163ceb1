"""Concurrency of the simulator itself, HTTP details clients rely on, and the fixtures."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from support.simulator import WORKFLOWS


def test_parallel_creates_respect_the_queue_exactly(api, sim):
    sim.configure(concurrency=1, queue_depth=3, run_seconds=5)
    body = {"apiKey": api.key, "workflowId": WORKFLOWS["empty"]}
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: api.call("create", body)["code"], range(20)))
    assert sorted(codes) == [0] * 4 + [421] * 16
    assert len(sim.tasks()) == 4
    assert sim.count("create") == 20


def test_keep_alive_session_survives_faults(api, sim):
    session = requests.Session()
    url = api.base + "/uc/openapi/accountStatus"
    sim.fault("accountStatus", "http_error", status=503)
    assert session.post(url, json={"apikey": api.key}, timeout=5).status_code == 503
    for _ in range(3):
        assert session.post(url, json={"apikey": api.key}, timeout=5).json()["code"] == 0
    sim.fault("accountStatus", "reset_before")
    try:
        session.post(url, json={"apikey": api.key}, timeout=5)
        raise AssertionError("the reset did not reach the client")
    except requests.exceptions.ConnectionError:
        pass
    assert session.post(url, json={"apikey": api.key}, timeout=5).json()["code"] == 0


def test_chunked_upload_body(api):
    def body():
        yield b"--XyZ\r\nContent-Disposition: form-data; name=\"apiKey\"\r\n\r\n" + api.key.encode() + b"\r\n"
        yield b"--XyZ\r\nContent-Disposition: form-data; name=\"fileType\"\r\n\r\nimage\r\n"
        yield b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.png\"\r\n\r\n"
        yield b"\x89PNG chunked" + b"\r\n--XyZ--\r\n"

    reply = requests.post(api.base + "/task/openapi/upload", data=body(), timeout=5,
                          headers={"Content-Type": "multipart/form-data; boundary=XyZ"}).json()
    assert reply["code"] == 0 and reply["data"]["fileName"].endswith(".png")


def test_upload_that_is_not_multipart_is_301(api):
    reply = api.call("upload", {"apiKey": api.key, "fileType": "image"})
    assert reply["code"] == 301


def test_function_scoped_fixture_is_its_own_process(simulator, sim):
    assert simulator.base_url != sim.base_url
    body = {"apiKey": simulator.keys[0], "workflowId": WORKFLOWS["empty"]}
    assert requests.post(simulator.base_url + "/task/openapi/create", json=body, timeout=5).json()["code"] == 0
    assert simulator.count("create") == 1 and sim.count("create") == 0
    assert simulator.keys[0] not in sim.keys


def test_reset_restores_the_start_state(api, sim):
    sim.configure(concurrency=7, legacy=True, keys={api.key: {"coins": 3}})
    sim.fault("create", "http_error", count=5)
    sim.reset()
    config = sim.config()
    assert config["settings"]["concurrency"] == 2 and config["settings"]["legacy"] is False
    assert api.call("accountStatus", {"apikey": api.key})["data"]["remainCoins"] == "100000"
    assert api.create("empty")["code"] == 0
