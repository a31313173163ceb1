"""Fixtures for the key pool against the simulator (real HTTP on loopback, real pack code);
`sim` and `no_key_in_logs` come from support/sim_fixtures.py."""

from __future__ import annotations

import pytest

from support.simulator import Simulator


@pytest.fixture(scope="module")
def module_sim():
    with Simulator(key_count=4, run_seconds=0.3, concurrency=2) as sim:
        yield sim
