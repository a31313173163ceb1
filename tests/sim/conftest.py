"""Simulator conformance tests: a client written from shared/runninghub-api.md, raw requests
(see raw_api.py)."""

from __future__ import annotations

import pytest

from raw_api import Api


@pytest.fixture
def sim(shared_simulator):
    """The session simulator, back in its start state."""
    shared_simulator.reset()
    yield shared_simulator


@pytest.fixture
def api(sim) -> Api:
    return Api(sim)
