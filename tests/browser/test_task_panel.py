"""The task panel (the "RunningHub" sidebar tab) in a real browser: it lists runs live as
the ledger changes, cancels a running task, and loads a finished task's outputs into an
RH Fetch Outputs node that then runs without creating anything.

Screenshots of every step: artifacts/browser/<test>/NN-<step>.png.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from support.graphs import run_fetch
from support.simulator import WORKFLOWS

pytestmark = pytest.mark.browser



def open_panel(page) -> None:
    """Clicks the sidebar tab's button, found by its accessible name: front end 1.32 names it
    by the tooltip ("RunningHub tasks: ..."; "RunningHub 任务..." in zh), 1.4x on by its label."""
    page.page.get_by_role("button", name=re.compile(r"^RunningHub\b")).first.click()


@pytest.fixture(scope="module")
def host(comfy_host_factory, sim):
    host = comfy_host_factory(env=sim.pack_env(),
                              fresh=True, name="panel")
    host.assert_pack_imported_cleanly()
    return host


def row(page, task_id: str, status: str | None = None):
    selector = f".rh-task-row[data-task-id='{task_id}']" + (f"[data-status={status}]" if status else "")
    return page.page.locator(selector)


def wait_until(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_the_panel_lists_runs_cancels_a_running_task_and_loads_a_finished_ones_outputs(host, sim_clean, open_page):
    sim = sim_clean
    sim.configure(run_seconds=1.0)
    page = open_page(host)
    lists = []
    page.page.on("request", lambda r: r.url.split("?")[0].endswith("/runninghub/tasks") and lists.append(r.url))
    open_panel(page)
    page.page.locator(".rh-tasks").wait_for()
    assert page.page.locator(".rh-tasks h3").inner_text() == "RunningHub tasks"
    page.page.wait_for_timeout(3000)
    assert len(lists) == 1, lists  # no polling: one list when the panel opens, then only on changes
    page.shot("empty-panel")

    # A run queued elsewhere (the HTTP API) shows up live and finishes.
    done = host.run(run_fetch(WORKFLOWS["noise"], seed=101), timeout=120)
    assert done.status == "success", done.error
    [finished] = sim.tasks()
    row(page, finished["taskId"], "SUCCESS").wait_for(timeout=30_000)
    text = row(page, finished["taskId"]).inner_text()
    assert f"workflow {WORKFLOWS['noise']}" in text and "coins" in text and done.prompt_id[:8] in text
    page.shot("finished-run")

    # A long run: Cancel in the panel cancels the remote task.
    sim.configure(run_seconds=120)
    prompt = host.queue_prompt(run_fetch(WORKFLOWS["noise"], seed=102))
    running = wait_until(lambda: [t for t in sim.tasks() if t["status"] == "RUNNING"], what="a running task")[0]
    row(page, running["taskId"], "RUNNING").wait_for(timeout=30_000)
    page.shot("running")
    row(page, running["taskId"]).locator(".rh-task-cancel").click()
    row(page, running["taskId"], "CANCEL").wait_for(timeout=30_000)
    assert wait_until(lambda: sim.task(running["taskId"])["cancelled"], timeout=10, what="the remote cancel")
    assert sim.count("cancel") >= 1
    host.wait_idle()
    assert host.history(prompt)["status"]["status_str"] == "error"  # the node says it was cancelled
    page.shot("cancelled")

    # Load outputs: an RH Fetch Outputs node with the finished task's id, which runs and creates nothing.
    creates = sim.count("create")
    page.js("() => app.graph.clear()")
    row(page, finished["taskId"]).locator(".rh-task-load").click()
    node = page.js("""() => app.graph.nodes.filter(n => n.comfyClass === 'RHFetchOutputs').map(n => ({
        id: n.id, task_id: n.widgets.find(w => w.name === 'task_id').value,
        account: n.widgets.find(w => w.name === 'account').value}))""")
    assert [(n["task_id"], n["account"]) for n in node] == [(finished["taskId"], "default")]
    page.page.get_by_role("button", name="Run", exact=True).first.click()

    def fetched():
        for entry in requests.get(f"{host.base_url}/history", timeout=30).json().values():
            out = entry.get("outputs", {}).get(str(node[0]["id"]))
            if out and out.get("images"):
                return out
        return None

    out = wait_until(fetched, what="the loaded outputs")
    assert len(out["images"]) == len(done.images("14")) and sim.count("create") == creates
    page.shot("loaded-outputs")
    assert not page.log.page_errors, page.log.page_errors



def test_the_panel_speaks_chinese(host, sim_clean, open_page):
    page = open_page(host, locale="zh", browser_locale="zh-CN")
    open_panel(page)
    page.page.locator(".rh-tasks").wait_for()
    assert page.page.locator(".rh-tasks h3").inner_text() == "RunningHub 任务"
    assert "种子" in page.page.locator(".rh-tasks").inner_text()
    page.shot("zh-panel")
