"""Root conftest: fixtures live in tests/support and are registered here."""

pytest_plugins = ["support.comfy_fixtures", "support.sim_fixtures"]
