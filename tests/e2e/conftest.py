"""Shared fixtures of the end-to-end tests."""

import pytest

from support.simulator import Simulator


@pytest.fixture(scope="module")
def sim():
    """A module's simulator, unless the module defines its own: tasks of 0.3 s, 2 per key."""
    with Simulator(run_seconds=0.3, concurrency=2) as s:
        yield s


@pytest.fixture
def fresh(sim, host):
    """The module's simulator back at its start state and its ComfyUI idle; faults cleared after."""
    sim.reset()
    host.wait_idle()
    yield
    sim.clear_faults()
