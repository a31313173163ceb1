"""Output URLs come from the network: only global addresses are fetched, in whatever form
an address is written, and the address connected to is checked too (DNS rebinding).
The rule is tested with an injected resolver, connecting nowhere; the connected-address
check on real sockets against the simulator's file server on loopback."""

from __future__ import annotations

import io
import time
from urllib.parse import urlparse

import pytest
import requests

from support.pack import pack_module
from support.simulator import WORKFLOWS

downloads = pack_module("client.downloads")
errors = pack_module("client.errors")
sites = pack_module("client.sites")

CN = sites.resolve_site("cn")
CUSTOM = sites.resolve_site(base_url="http://127.0.0.9:8765")  # a local proxy
PUBLIC = "93.184.216.34"


def resolver(table: dict[str, list[str]]):
    def resolve(host: str) -> list[str]:
        return table[host]  # a host the test did not list is a test bug: KeyError
    return resolve


LOCAL_LITERALS = [
    "169.254.169.254",        # cloud metadata
    "100.64.0.1",             # CGNAT / shared address space: not private, not global
    "127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "0.0.0.0", "224.0.0.1",
    "[::1]", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "[fe80::1]", "[fc00::1]",
    "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]",
    "0x7f000001", "2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0xa9.0xfe.0xa9.0xfe", "017700000001",
]


@pytest.mark.parametrize("site", [CN, CUSTOM], ids=["cn", "custom"])
@pytest.mark.parametrize("host", LOCAL_LITERALS)
def test_local_and_reserved_addresses_are_refused_in_every_form(site, host):
    with pytest.raises(errors.DownloadError, match="Refusing to download"):
        downloads.check_url(f"http://{host}/latest/meta-data", site, task_id="1",
                            resolve=resolver({}))  # literals never ask the resolver


@pytest.mark.parametrize("addresses", [["10.0.0.7"], [PUBLIC, "127.0.0.1"], ["100.100.100.100"],
                                       ["::ffff:192.168.0.1"]])
def test_a_name_with_any_local_address_is_refused(addresses):
    resolve = resolver({"cdn.evil.example": addresses})
    with pytest.raises(errors.DownloadError, match="cdn.evil.example"):
        downloads.check_url("https://cdn.evil.example/o.png", CN, resolve=resolve)


def test_public_hosts_pass():
    resolve = resolver({"rh-images.example": [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]})
    url = "https://rh-images.example/output/a.png?x=1"
    assert downloads.check_url(url, CN, resolve=resolve) == url
    assert downloads.check_url(f"http://{PUBLIC}:8080/a.png", CN, resolve=resolver({})).endswith("a.png")


def test_a_custom_base_url_lets_only_its_own_host_through_on_any_port():
    nothing = resolver({})
    for url in ("http://127.0.0.9:8765/files/a.png", "http://127.0.0.9:9999/files/a.png"):
        assert downloads.check_url(url, CUSTOM, resolve=nothing) == url
    resolve = resolver({"localhost": ["127.0.0.1"], "metadata.google.internal": ["169.254.169.254"]})
    for url in ("http://localhost:8765/a.png", "http://127.0.0.1:8765/a.png", "http://metadata.google.internal/"):
        with pytest.raises(errors.DownloadError):
            downloads.check_url(url, CUSTOM, resolve=resolve)


def test_a_custom_base_url_named_localhost_lets_its_own_addresses_through():
    """The simulator (or a local proxy) reached as `localhost` serves its files under the
    address it is bound to: those addresses are the base host's own, nothing else is."""
    site = sites.resolve_site(base_url="http://localhost:8765")
    resolve = resolver({"localhost": ["127.0.0.1", "::1"], "files.local": ["127.0.0.1"],
                        "mixed.local": ["127.0.0.1", "10.0.0.5"]})
    for url in ("http://127.0.0.1:40123/rh-resource-models/x/output/a.png", "http://[::1]:9/a.png",
                "http://files.local:1/a.png"):
        assert downloads.check_url(url, site, resolve=resolve) == url
    for url in ("http://127.0.0.2/a.png", "http://169.254.169.254/", "http://mixed.local/a.png"):
        with pytest.raises(errors.DownloadError):
            downloads.check_url(url, site, resolve=resolve)


def test_ip_literal_reads_every_form_the_c_library_accepts():
    for text in ("0x7f000001", "2130706433", "0177.0.0.1", "0x7f.1", "127.1", "127.0.0.1", "0x7f.0.0x0.01"):
        assert str(downloads.ip_literal(text)) == "127.0.0.1", text
    for name in ("example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "cdn-1.example"):
        assert downloads.ip_literal(name) is None, name


@pytest.fixture
def file_url(client):
    """A real output file on the simulator's loopback listener."""
    task = client.create_task(WORKFLOWS["empty"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = client.outputs(task.task_id)
        if state.result is not None:
            return state.result.outputs[0].url
        time.sleep(0.05)
    raise AssertionError("the simulator's task never finished")


def test_the_connected_address_is_checked_too(file_url):
    """`localhost` passed the name check (a rebinding resolver said it was public) but the
    connection went to 127.0.0.1: refused before the body is read."""
    rebound = file_url.replace("127.0.0.1", "localhost")
    with requests.get(rebound, stream=True, timeout=10) as resp:
        with pytest.raises(errors.DownloadError, match="resolved to 127.0.0.1"):
            downloads.check_peer(resp, CN, task_id="7")
    port = urlparse(file_url).port
    for base in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):  # the owner's own address
        with requests.get(file_url, stream=True, timeout=10) as resp:
            downloads.check_peer(resp, sites.resolve_site(base_url=base))
            assert resp.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_download_whose_name_is_rebound_is_refused(file_url, client, monkeypatch):
    """The whole download path: the name check passes, the connection goes to loopback."""
    monkeypatch.setattr(downloads, "system_resolver", lambda host: [PUBLIC])
    with pytest.raises(errors.DownloadError, match="resolved to 127.0.0.1"):
        downloads.download_to(client.transport.session, file_url.replace("127.0.0.1", "localhost"), io.BytesIO(),
                              site=CN, task_id="7")
