"""Fixtures for client tests against the simulator over real HTTP on loopback
(`sim`, `client` and `no_key_in_logs` come from support/sim_fixtures.py)."""

import pytest

from support.simulator import Simulator


@pytest.fixture(scope="module")
def module_sim():
    with Simulator(run_seconds=0.3, concurrency=2) as sim:
        yield sim


@pytest.fixture(scope="session")
def remote_comfy():
    """RunningHub's remote for the native-endpoint tests: a ComfyUI without the pack, with
    two test nodes (support/native_test_nodes.py)."""
    from support.native_support import remote_comfy_host

    with remote_comfy_host() as host:
        yield host
