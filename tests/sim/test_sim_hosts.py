"""The API host and the output host: separate listeners on one loopback address, addresses
that never come from the request's Host header, CDN-like text encoding, Nagle off."""

from __future__ import annotations

import gzip
from urllib.parse import urlsplit

import requests


def _health(sim) -> dict:
    return requests.get(sim.base_url + "/__sim__/health", timeout=5).json()


def test_outputs_live_on_a_second_port_of_the_same_address(api, sim):
    (item,) = api.run("noise")["data"]
    url, api_url = urlsplit(item["fileUrl"]), urlsplit(sim.base_url)
    assert url.hostname == api_url.hostname and url.port != api_url.port
    assert url.path.startswith("/rh-resource-models/") and "/output/" in url.path
    assert f"{url.scheme}://{url.netloc}" == _health(sim)["filesBaseUrl"]
    assert api.download(item["fileUrl"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    api_path = requests.get(sim.base_url + url.path, timeout=5)
    assert api_path.status_code == 404


def test_urls_ignore_the_host_header(api, sim):
    task_id = api.task_id("noise")
    api.wait(task_id)
    for host in ("http://www.runninghub.cn", "evil.example:1234", "www.runninghub.ai"):
        reply = api.call("outputs", {"apiKey": api.key, "taskId": task_id}, headers={"Host": host})
        (item,) = reply["data"]
        assert item["fileUrl"].startswith(_health(sim)["filesBaseUrl"] + "/"), item["fileUrl"]


def test_text_outputs_may_be_gzipped_like_a_cdn(api, sim):
    (item,) = api.run("text", [("1", "value", "hello gzip " * 20)])["data"]
    plain = requests.get(item["fileUrl"], headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert "Content-Encoding" not in plain.headers and plain.text == "hello gzip " * 20
    sim.configure(gzip_text_outputs=True)
    raw = requests.get(item["fileUrl"], headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip" and raw.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(raw.raw.read()) == ("hello gzip " * 20).encode()
    identity = requests.get(item["fileUrl"], headers={"Accept-Encoding": "identity"}, timeout=5)
    assert "Content-Encoding" not in identity.headers and identity.text == "hello gzip " * 20
    (png,) = api.run("noise")["data"]
    assert "Content-Encoding" not in requests.get(png["fileUrl"], timeout=5).headers


def test_nagle_is_off_on_accepted_connections(sim):
    assert _health(sim)["tcpNoDelay"] is True


def test_outputs_may_redirect_like_a_cdn(api, sim):
    (item,) = api.run("noise")["data"]
    direct = requests.get(item["fileUrl"], timeout=5).content
    sim.configure(redirect_outputs=True)
    hop = requests.get(item["fileUrl"], timeout=5, allow_redirects=False)
    assert hop.status_code == 302
    location = urlsplit(hop.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == _health(sim)["filesBaseUrl"] and location.path.startswith("/cdn/")
    followed = requests.get(item["fileUrl"], timeout=5)
    assert followed.status_code == 200 and followed.content == direct and len(followed.history) == 1
    sim.expire_outputs(sim.tasks()[-1]["taskId"])
    assert requests.get(item["fileUrl"], timeout=5, allow_redirects=False).status_code == 404
    assert requests.get(hop.headers["Location"], timeout=5).status_code == 404
