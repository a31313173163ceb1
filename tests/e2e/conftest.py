"""Shared fixtures of the end-to-end tests."""

import pytest


@pytest.fixture
def fresh(sim, host):
    """The module's simulator back at its start state and its ComfyUI idle; faults cleared after."""
    sim.reset()
    host.wait_idle()
    yield
    sim.clear_faults()
