"""Fixtures of the attack suite (issue 8): a simulator per module, over real HTTP on loopback."""

import pytest

from support.simulator import Simulator


@pytest.fixture(scope="module")
def module_sim():
    with Simulator(run_seconds=0.3, concurrency=2) as sim:
        yield sim
