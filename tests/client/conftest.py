"""Fixtures for client tests against the simulator over real HTTP on loopback
(`sim`, `client` and `no_key_in_logs` come from support/sim_fixtures.py, `remote_comfy`
from support/comfy_fixtures.py)."""

import pytest

from support.simulator import Simulator


@pytest.fixture(scope="module")
def module_sim():
    with Simulator(run_seconds=0.3, concurrency=2) as sim:
        yield sim

