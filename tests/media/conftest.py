"""Fixtures for the media tests: the pack's media modules. File makers live in media_files.py."""

from __future__ import annotations

import pytest

from support.pack import pack_module


@pytest.fixture(scope="session")
def images():
    return pack_module("media.images")


@pytest.fixture(scope="session")
def audio():
    return pack_module("media.audio")


@pytest.fixture(scope="session")
def video():
    return pack_module("media.video")


@pytest.fixture(scope="session")
def sniff():
    return pack_module("media.sniff")


@pytest.fixture(scope="session")
def limits():
    return pack_module("media.limits")


@pytest.fixture(scope="session")
def errors():
    return pack_module("media.errors")
