"""pytest fixtures for real ComfyUI servers (see comfy_host.py).

Start-up costs several seconds on two cores, so hosts live for the whole session:
- `plain_comfy`: ComfyUI without the pack (what the simulator forwards graphs to);
- `remote_comfy`: ComfyUI without the pack but with the test nodes of
  native_test_nodes.py: RunningHub's remote for the native-endpoint tests;
- `comfy_host_factory(env=..., extra_args=...)`: ComfyUI with the pack. Asking twice with
  the same env and args gives the same running host; pass `fresh=True` for one of your
  own (still stopped at session end). Tests sharing a host must not leave work queued.
  At the end of the session, before stopping them, every host is scanned for test keys
  (support/secret_scan.py): the log, /history, /internal/logs, its folders and PNG
  metadata. A find fails the run.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import pytest

from . import secret_scan
from .comfy_host import ComfyHost, selected_host


@pytest.fixture(scope="session")
def plain_comfy():
    with ComfyHost(with_pack=False, name="plain") as host:
        yield host


@pytest.fixture(scope="session")
def remote_comfy():
    """RunningHub's remote for the native-endpoint tests: a ComfyUI without the pack, with
    the test nodes of native_test_nodes.py (steps, a failure, a gate the test opens)."""
    from .native_support import remote_comfy_host

    with remote_comfy_host() as host:
        yield host


@pytest.fixture(scope="session")
def comfy_host_factory() -> Callable[..., ComfyHost]:
    shared: dict[tuple, ComfyHost] = {}
    every: list[ComfyHost] = []

    def make(env: Mapping[str, str] | None = None, extra_args: Iterable[str] = (),
             *, fresh: bool = False, name: str = "pack") -> ComfyHost:
        env = dict(env or {})
        extra_args = tuple(extra_args)
        key = (tuple(sorted(env.items())), extra_args)
        host = None if fresh else shared.get(key)
        if host is not None and host.running:
            host.wait_idle()
            return host
        host = ComfyHost(with_pack=True, env=env, extra_args=extra_args, name=name)
        every.append(host)
        host.start()
        if not fresh:
            shared[key] = host
        return host

    yield make
    found: list[str] = []
    try:
        for host in every:
            found += secret_scan.scan_host(host)  # before stop() removes the host's folders
    finally:
        for host in every:
            host.stop()
    assert not found, "test keys leaked (scan of every ComfyUI with the pack at the end of the session):\n" + \
        "\n".join(found)


@pytest.fixture(scope="session")
def comfy_with_pack(comfy_host_factory) -> ComfyHost:
    """The pack in a real ComfyUI with no RunningHub settings at all."""
    return comfy_host_factory()


# --------------------------------------------------------------------------------------
# `@pytest.mark.comfyui_min("0.33.0")`: a test of something older hosts do not have (a trim
# window on VIDEO values, say). On an older host of the matrix it is deselected, not skipped:
# the matrix runs it on the hosts that have the feature.


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def pytest_collection_modifyitems(config, items):
    host = _version(selected_host())
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("comfyui_min")
        (dropped if marker and host < _version(marker.args[0]) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# --------------------------------------------------------------------------------------
# A skipped test is not a passing test (DEVELOPERS rule): a run that skipped anything
# exits 1, listing what was skipped and why. RH_ALLOW_SKIPS=1 relaxes it for local use.
# (It lives in this plugin because conftest.py registers the plugins; xfail is unaffected.)

_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    import os

    if _skipped and exitstatus == 0 and os.environ.get("RH_ALLOW_SKIPS") != "1":
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import os

    if _skipped and os.environ.get("RH_ALLOW_SKIPS") != "1":
        terminalreporter.section("skipped tests fail this run (RH_ALLOW_SKIPS=1 to allow)", red=True)
        for line in _skipped:
            terminalreporter.line(line)
