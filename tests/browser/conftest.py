"""Real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the real
ComfyUI front end served by a real ComfyUI with the pack, and the RunningHub simulator on
loopback behind it. Nothing is mocked.

Every page records console messages, page errors and failed requests, and saves a
screenshot of each step under artifacts/browser/<test>/ (kept as CI artifacts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from support.comfy_host import PACK_DIR_NAME, REPO_ROOT, selected_front_end, selected_host
from support.simulator import Simulator

CHROMIUM = os.environ.get("RH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# One folder per host of the matrix, so a later host's screenshots never replace another's.
ARTIFACTS = REPO_ROOT / "artifacts" / "browser" / (
    f"comfyui-{selected_host()}" + (f"-fe{selected_front_end()}" if selected_front_end() else ""))
VIEWPORT = {"width": 1400, "height": 900}
APP_READY_JS = "() => !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph)"
PACK_READY_JS = ("() => !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
                 " && window.app.extensions?.some(e => e.name === 'RunningHub.Bridge')"
                 " && document.getElementById('rh-bridge-style'))")
PACK_CONSOLE_JS = """(() => {
    for (const level of ['warn', 'error']) {
        const original = console[level];
        console[level] = function (...args) {
            const stack = new Error().stack ?? '';
            if (stack.includes('/extensions/%s/')) {
                window.__rhPackConsole?.(`${level}: ${args.map(String).join(' ')}\\n${stack}`);
            }
            return original.apply(this, args);
        };
    }
})()""" % PACK_DIR_NAME
# For tests that change the graph from code: records it with the workflow's change tracker
# (captureCanvasState from front end 1.5x on, checkState, deprecated there, before).
CAPTURE_STATE_JS = """window.rhTestCaptureState = () => {
    const tracker = app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
    if (tracker?.captureCanvasState) tracker.captureCanvasState(); else tracker?.checkState();
};"""
PACK_URL_PARTS = (f"/extensions/{PACK_DIR_NAME}/", "/runninghub/", "/i18n")


@pytest.fixture(scope="session")
def playwright_instance():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "the browser tests never download a browser.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def sim():
    with Simulator(run_seconds=3.0) as simulator:
        yield simulator


@pytest.fixture
def sim_clean(sim):
    sim.reset()
    sim.configure(run_seconds=3.0)
    return sim


@dataclass
class PageLog:
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, status or failure)
    pack_messages: list[str] = field(default_factory=list)  # warnings and errors naming a pack file

    def errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def record(self, message) -> None:
        """Keeps a console message; a warning or error that names one of the pack's files
        (in its text, its stack or where it was logged from) is also kept apart: any such
        message fails the test (a deprecation warning of a newer front end included)."""
        self.console.append((message.type, message.text))
        if message.type in ("warning", "error"):
            where = " ".join(str(message.location.get(k, "")) for k in ("url", "lineNumber"))
            stack = f"{message.text} @ {where}"
            if PACK_DIR_NAME in stack:
                self.pack_messages.append(stack)

    def pack_failures(self) -> list[tuple[str, str]]:
        return [(url, why) for url, why in self.failed if any(p in url for p in PACK_URL_PARTS)]


class BrowserPage:
    """A Chromium page on a ComfyUI host, with a fresh user-data-dir and step screenshots."""

    def __init__(self, pw, host, artifacts: Path, browser_locale: str = "en-US"):
        self.host = host
        self.artifacts = artifacts
        self.log = PageLog()
        self.user_data_dir = Path(tempfile.mkdtemp(prefix="rh-chromium-"))
        self.context = pw.chromium.launch_persistent_context(
            str(self.user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT, accept_downloads=True, locale=browser_locale)
        # Hide the front end's "try the new node design" banner, so screenshots show the canvas.
        self.context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
        # A warning the front end logs about a call the pack made (a deprecated LiteGraph
        # API, say) is logged from the front end's file: the call stack names the pack.
        self.context.expose_function("__rhPackConsole", lambda text: self.log.pack_messages.append(text))
        self.context.add_init_script(PACK_CONSOLE_JS)
        self.context.add_init_script(CAPTURE_STATE_JS)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("console", self.log.record)
        self.page.on("pageerror", lambda e: self.log.page_errors.append(f"{e}\n{getattr(e, 'stack', '')}"))
        self.page.on("response", lambda r: r.status >= 400 and self.log.failed.append((r.url, str(r.status))))
        self.page.on("requestfailed", lambda r: self.log.failed.append((r.url, str(r.failure))))
        self.steps = 0

    def open(self, ready: str = PACK_READY_JS) -> "BrowserPage":
        self.page.goto(self.host.base_url)
        self.page.wait_for_function(ready, timeout=90_000)
        self.page.wait_for_timeout(500)
        return self

    def shot(self, name: str) -> Path:
        self.steps += 1
        path = self.artifacts / f"{self.steps:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def js(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            shutil.rmtree(self.user_data_dir, ignore_errors=True)

    # ------------------------------------------------------------ front-end helpers

    def open_settings(self, category: str) -> None:
        """Opens ComfyUI's settings dialog (its command, as the gear button does) and picks a
        category: an `option` of a list box up to front end 1.3x, a `button` from 1.5x on."""
        self.js("() => app.extensionManager.command.execute('Comfy.ShowSettingsDialog')")
        dialog = self.page.get_by_role("dialog").filter(has_text=category).first
        dialog.wait_for()
        entry = dialog.get_by_role("option", name=category, exact=True).or_(
            dialog.get_by_role("button", name=category, exact=True))
        entry.first.click()

    def close_dialogs(self) -> None:
        self.page.keyboard.press("Escape")
        self.page.wait_for_timeout(300)

    def build_graph(self, script: str) -> dict:
        """Clears the canvas, runs `script` (a function body with `mk(type, x, y)` and `g`),
        and returns what it returns; the view is reset so nodes sit where they were put."""
        return self.js("""(body) => {
            const g = app.graph;
            g.clear();
            const mk = (type, x, y) => { const n = LiteGraph.createNode(type); n.pos = [x, y]; g.add(n); return n; };
            const result = new Function('g', 'mk', 'LiteGraph', body)(g, mk, LiteGraph);
            app.canvas.ds.scale = 0.85;
            app.canvas.ds.offset = [110, 140];
            g.setDirtyCanvas(true, true);
            window.rhTestCaptureState();
            return result;
        }""", script)

    def widget_center(self, node_id: int, widget_name: str) -> tuple[float, float]:
        """Page coordinates of the middle of a canvas widget."""
        return tuple(self.js("""([nodeId, name]) => {
            const n = app.graph.getNodeById(nodeId);
            const w = n.widgets.find(w => w.name === name);
            const rect = app.canvas.canvas.getBoundingClientRect();
            const ratio = app.canvas.canvas.width / rect.width;
            const [x, y] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] + w.y + 10]);
            return [rect.left + x / ratio, rect.top + y / ratio];
        }""", [node_id, widget_name]))

    def widget_values(self, node_id: int) -> dict:
        return self.js("(id) => Object.fromEntries(app.graph.getNodeById(id).widgets.map(w => [w.name, w.value]))",
                       node_id)

    def storage_dump(self) -> str:
        """localStorage, sessionStorage, cookies and every IndexedDB object store, as text."""
        return self.js("""async () => {
            const out = {local: {...localStorage}, session: {...sessionStorage}, cookies: document.cookie, idb: {}};
            const dbs = indexedDB.databases ? await indexedDB.databases() : [];
            for (const info of dbs) {
                const db = await new Promise((ok, fail) => {
                    const r = indexedDB.open(info.name); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error);
                });
                const stores = {};
                for (const name of db.objectStoreNames) {
                    stores[name] = await new Promise((ok, fail) => {
                        const req = db.transaction(name, 'readonly').objectStore(name).getAll();
                        req.onsuccess = () => ok(req.result); req.onerror = () => fail(req.error);
                    });
                }
                db.close();
                out.idb[info.name] = stores;
            }
            return JSON.stringify(out);
        }""")


def set_server_settings(host, values: dict) -> None:
    """What the front end itself does to store a setting (POST /api/settings/<id>)."""
    for key, value in values.items():
        resp = requests.post(f"{host.base_url}/api/settings/{key}", json=value, timeout=30)
        assert resp.status_code == 200, resp.text


BASE_SETTINGS = {
    "Comfy.TutorialCompleted": True,   # no first-run template browser over the canvas
    "Comfy.PromptFilename": False,     # exports download at once, named "workflow.json"
    "Comfy.Locale": "en",
    "Comfy.Minimap.Visible": False,    # it would cover nodes in the screenshots
}


@pytest.fixture
def open_page(playwright_instance, request):
    """`open_page(host, locale="en")` → a BrowserPage on the host's front end."""
    pages: list[BrowserPage] = []
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)

    def make(host, *, locale: str = "en", settings: dict | None = None, sub: str | None = None,
             with_pack: bool = True, browser_locale: str = "en-US") -> BrowserPage:
        set_server_settings(host, {**BASE_SETTINGS, "Comfy.Locale": locale, **(settings or {})})
        artifacts = folder / sub if sub else folder
        artifacts.mkdir(parents=True, exist_ok=True)
        page = BrowserPage(playwright_instance, host, artifacts, browser_locale)
        pages.append(page)
        return page.open(PACK_READY_JS if with_pack else APP_READY_JS)

    yield make
    for page in pages:
        (page.artifacts / "console.json").write_text(json.dumps(
            {"console": page.log.console, "page_errors": page.log.page_errors, "failed": page.log.failed},
            indent=1, ensure_ascii=False))
        page.close()
    pack_messages = [m for page in pages for m in page.log.pack_messages]
    assert pack_messages == [], f"console warnings or errors from the pack's files: {pack_messages}"
