"""pytest fixtures for the RunningHub simulator (registered in tests/conftest.py).

- `simulator`: a fresh simulator per test (function scope);
- `shared_simulator`: one simulator for the whole session; tests that use it should call
  `shared_simulator.reset()` first (or use a fixture that does) since state carries over.
"""

from __future__ import annotations

import pytest

from support.simulator import Simulator


@pytest.fixture
def simulator():
    with Simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def shared_simulator():
    with Simulator() as sim:
        yield sim
