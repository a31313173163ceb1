"""The rule of host_guard on its own: which Host headers reach the pack's routes."""

from __future__ import annotations

import pytest

from support.pack import pack_module

guard = pack_module("host.host_guard")


@pytest.mark.parametrize("header", ["127.0.0.1:8188", "localhost:8188", "LocalHost.:8188", "[::1]:8188",
                                    "192.168.1.20:8188", "[fe80::1]", "10.0.0.2", "localhost"])
def test_loopback_ip_literals_and_localhost_pass(header, monkeypatch):
    monkeypatch.delenv(guard.ENV_ALLOWED_HOSTS, raising=False)
    assert guard.refusal(header) is None


@pytest.mark.parametrize("header", ["evil.example:8188", "evil.example", "127.0.0.1.nip.io:8188",
                                    "localhost.evil.example", "", "x:notaport", "[bad"])
def test_other_names_are_refused_naming_the_setting(header, monkeypatch):
    monkeypatch.delenv(guard.ENV_ALLOWED_HOSTS, raising=False)
    message = guard.refusal(header)
    assert message is not None and "RUNNINGHUB_ALLOWED_HOSTS=" in message and "DNS rebinding" in message


def test_names_the_owner_listed_pass(monkeypatch):
    monkeypatch.setenv(guard.ENV_ALLOWED_HOSTS, "comfy.lan, Studio.Example.:443")
    for header in ("comfy.lan:8188", "COMFY.LAN", "studio.example"):
        assert guard.refusal(header) is None, header
    assert guard.refusal("evil.example:8188") is not None


# ------------------------------------------------------------------ Origin and body


@pytest.mark.parametrize("origin, host", [(None, "127.0.0.1:8188"), ("http://127.0.0.1:8188", "127.0.0.1:8188"),
                                          ("http://localhost:8188", "localhost:8188"), ("http://[::1]:8188", "[::1]:8188"),
                                          ("https://comfy.example", "comfy.example"),
                                          ("http://192.168.1.20:8188", "192.168.1.20:8188")])
def test_comfyuis_own_page_and_scripts_pass(origin, host, monkeypatch):
    monkeypatch.delenv(guard.ENV_ALLOWED_HOSTS, raising=False)
    assert guard.origin_refusal(origin, "same-origin" if origin else None, host) is None


@pytest.mark.parametrize("origin, fetch_site, host, says", [
    ("null", "cross-site", "127.0.0.1:8188", "a page without an address"),
    ("NULL", None, "0.0.0.0:8188", "a page without an address"),
    ("http://evil.example", "cross-site", "0.0.0.0:8188", "RUNNINGHUB_ALLOWED_HOSTS=evil.example"),
    ("http://evil.example", "cross-site", "[::ffff:7f00:1]:8188", "the page at http://evil.example"),
    ("http://localhost:3000", "same-site", "localhost:8188", "the page at http://localhost:3000"),
    ("http://127.0.0.1", "same-site", "127.0.0.1:8188", "the page at http://127.0.0.1"),
    ("http://[bad", None, "127.0.0.1:8188", "the page at http://[bad"),
    (None, "cross-site", "127.0.0.1:8188", "another web page"),
    (None, "same-site", "127.0.0.1:8188", "another web page"),
])
def test_other_pages_are_refused(origin, fetch_site, host, says, monkeypatch):
    monkeypatch.delenv(guard.ENV_ALLOWED_HOSTS, raising=False)
    message = guard.origin_refusal(origin, fetch_site, host)
    assert message is not None and says in message and "not from ComfyUI's own page" in message
    if "localhost:3000" in says:  # the same name on another port: listing it would not help
        assert guard.ENV_ALLOWED_HOSTS not in message


def test_an_origin_the_owner_listed_passes_but_not_localhost_on_any_port(monkeypatch):
    monkeypatch.setenv(guard.ENV_ALLOWED_HOSTS, "comfy.example, localhost")
    assert guard.origin_refusal("https://comfy.example", "same-origin", "127.0.0.1:8188") is None  # a reverse proxy
    assert guard.origin_refusal("http://localhost:3000", "same-site", "localhost:8188") is not None


@pytest.mark.parametrize("method, content_type, has_body, refused", [
    ("GET", None, False, False), ("POST", None, False, False), ("DELETE", None, False, False),
    ("POST", "application/json", True, False), ("POST", "Application/JSON; charset=utf-8", True, False),
    ("POST", "text/plain", True, True), ("POST", "application/x-www-form-urlencoded", True, True),
    ("POST", "multipart/form-data; boundary=x", True, True), ("POST", None, True, True),
    ("POST", "text/plain", False, True), ("DELETE", "text/plain", True, True),
])
def test_only_json_bodies_reach_a_route(method, content_type, has_body, refused):
    message = guard.body_refusal(method, content_type, has_body)
    assert (message is not None) == refused
    if refused:
        assert "Content-Type: application/json" in message
