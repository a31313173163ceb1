"""scripts/os-deps.sh, which `make setup` and `make test` run first: without root it never
installs anything and names the one command that would."""

from __future__ import annotations

import os
import subprocess

from support.comfy_host import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "os-deps.sh"


def run_unprivileged(env: dict[str, str]) -> subprocess.CompletedProcess:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.getuid() == 0 else []
    return subprocess.run([*as_nobody, "bash", str(SCRIPT)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, cwd="/")


def test_without_root_a_missing_browser_is_named_with_the_command_to_run():
    result = run_unprivileged({"RH_CHROMIUM": "/nonexistent/chromium"})
    assert result.returncode == 1
    assert "sudo apt-get install -y chromium" in result.stderr, result.stderr


def test_nothing_missing_is_quiet():
    result = run_unprivileged({})
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
