"""pytest fixtures for the RunningHub simulator (registered in tests/conftest.py).

- `simulator`: a fresh simulator per test (function scope);
- `shared_simulator`: one simulator for the whole session; tests that use it should call
  `shared_simulator.reset()` first (or use a fixture that does) since state carries over;
- `sim`: a test folder's module-scoped `module_sim` (its conftest defines it with the
  settings it needs), reset before each test and cleared of faults after;
- `client`: a pack client on `sim`'s first key, retry delays short enough for tests;
- `no_key_in_logs`: fails the test if any of `sim`'s keys shows up in what the pack logged.
"""

from __future__ import annotations

import logging

import pytest

from support.clients import make_client
from support.simulator import Simulator


@pytest.fixture
def simulator():
    with Simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def shared_simulator():
    with Simulator() as sim:
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
    caplog.set_level(logging.DEBUG)
    yield caplog
    for key in sim.keys:
        assert key not in caplog.text
