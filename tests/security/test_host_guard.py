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
