"""Fixtures for the key pool against the simulator (real HTTP on loopback, real pack code)."""

from __future__ import annotations

import logging

import pytest

from support.simulator import Simulator


@pytest.fixture(scope="module")
def module_sim():
    with Simulator(key_count=4, run_seconds=0.3, concurrency=2) as sim:
        yield sim


@pytest.fixture
def sim(module_sim):
    module_sim.reset()
    yield module_sim
    module_sim.clear_faults()


@pytest.fixture
def no_key_in_logs(caplog, sim):
    """Fails the test if any of the simulator's keys shows up in what the pack logged."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for key in sim.keys:
        assert key not in caplog.text
