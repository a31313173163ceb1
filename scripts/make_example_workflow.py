"""Builds the example graph in the real ComfyUI front end and saves what it produces.

Writes, from one graph built through the front end's own API (so the files are exactly
what ComfyUI itself would save):
  example_workflows/RunningHub_upload_run_fetch.json      the workflow (shown as a template)
  example_workflows/RunningHub_upload_run_fetch.jpg       its template thumbnail
  demo/RunningHub_upload_run_fetch.api.json               the same graph in API format (make demo)
  docs/images/example-graph.png                           the picture in the README

Run: bash scripts/run-in-venv.sh python scripts/make_example_workflow.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.comfy_host import ComfyHost  # noqa: E402

NAME = "RunningHub_upload_run_fetch"

BUILD_GRAPH = """
async () => {
  const app = window.app;
  const LG = window.LiteGraph;
  app.graph.clear();
  let x = 40;
  const add = (type, title) => {
    const n = LG.createNode(type);
    n.pos = [x, 40];
    if (title) n.title = title;
    app.graph.add(n);
    x += n.size[0] + 70;
    return n;
  };
  const setw = (n, name, v) => { n.widgets.find(w => w.name === name).value = v; };
  const load = add("LoadImage");
  setw(load, "image", "example.png");
  const upload = add("RHUpload");
  const override = add("RHNodeOverride", "RH Node Override (remote Load Image)");
  setw(override, "node_id", "1");
  setw(override, "field_name", "image");
  const run = add("RHRunWorkflow");
  setw(run, "workflow_id", "1990000000000000001");
  // Re-queueing must not bill again: keep the seed fixed; 'randomize' is one click away.
  setw(run, "control_after_generate", "fixed");
  const fetch = add("RHFetchOutputs");
  const save = add("SaveImage");
  setw(save, "filename_prefix", "runninghub");
  const slot = (n, name, outputs) => (outputs ? n.outputs : n.inputs).findIndex(s => s.name === name);
  load.connect(slot(load, "IMAGE", true), upload, slot(upload, "image"));
  load.connect(slot(load, "MASK", true), upload, slot(upload, "mask"));
  upload.connect(0, override, slot(override, "value"));
  override.connect(0, run, slot(run, "overrides"));
  run.connect(0, fetch, slot(fetch, "task"));
  fetch.connect(0, save, slot(save, "images"));
  app.graph.setDirtyCanvas(true, true);
  const prompt = await app.graphToPrompt();
  return {workflow: app.graph.serialize(), api: prompt.output};
}
"""


# Puts the graph below the floating toolbars and returns its on-screen box (with a margin).
FRAME_GRAPH = """
() => {
  const c = window.app.canvas;
  c.ds.scale = 1;
  c.ds.offset = [90, 200];
  c.setDirty(true, true);
  const rect = c.canvas.getBoundingClientRect();
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of window.app.graph._nodes) {
    const [x, y, w, h] = n.getBounding();
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
  }
  const m = 16;
  return {x: rect.left + x0 + 90 - m, y: rect.top + y0 + 200 - m, width: x1 - x0 + 2 * m, height: y1 - y0 + 2 * m + 90};
}
"""


def main() -> int:
    from playwright.sync_api import sync_playwright

    with ComfyHost(with_pack=True, name="example") as host:
        from PIL import Image

        with tempfile.TemporaryDirectory() as tmp:
            sample = Path(tmp) / "example.png"
            Image.new("RGB", (512, 512), (200, 120, 40)).save(sample)
            host.upload_image(sample, "example.png")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run"])
            # A first visit opens the templates dialog: mark the tour as done, as a returning user.
            host.post("/settings/Comfy.TutorialCompleted", json=True)
            host.post("/settings/Comfy.Minimap.Visible", json=False)
            page = browser.new_page(viewport={"width": 2300, "height": 800})
            page.goto(host.base_url, wait_until="networkidle")
            page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=60_000)
            built = page.evaluate(BUILD_GRAPH)
            page.keyboard.press("Escape")
            clip = page.evaluate(FRAME_GRAPH)
            page.wait_for_timeout(800)
            shot = REPO / "docs" / "images" / "example-graph.png"
            page.screenshot(path=str(shot), clip=clip)
            thumb = REPO / "example_workflows" / f"{NAME}.jpg"
            Image.open(shot).convert("RGB").resize((1030, 240)).save(thumb, quality=85)
            browser.close()
    (REPO / "example_workflows" / f"{NAME}.json").write_text(json.dumps(built["workflow"], indent=2) + "\n")
    (REPO / "demo" / f"{NAME}.api.json").write_text(json.dumps(built["api"], indent=2) + "\n")
    print(f"wrote example_workflows/{NAME}.json, demo/{NAME}.api.json, docs/images/example-graph.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
