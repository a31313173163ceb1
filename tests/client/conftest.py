"""Fixtures for client tests against the simulator over real HTTP on loopback."""

import logging

import pytest

from support.simulator import Simulator

from support.clients import make_client


@pytest.fixture(scope="module")
def module_sim():
    with Simulator(run_seconds=0.3, concurrency=2) as sim:
        yield sim


@pytest.fixture
def sim(module_sim):
    module_sim.reset()
    yield module_sim
    module_sim.clear_faults()


@pytest.fixture
def client(sim):
    return make_client(sim)


@pytest.fixture
def no_key_in_logs(caplog, sim):
    """Fails the test if any of the simulator's keys shows up in what the pack logged."""
    caplog.set_level(logging.DEBUG)
    yield
    text = caplog.text
    for key in sim.keys:
        assert key not in text
