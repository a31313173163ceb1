""""Run on RunningHub" for a group, in a real browser: the group's menu marks it (with an
account profile), the saved workflow keeps the choice and no key, and a queued graph runs
the group's nodes on "RunningHub" — the simulator's native endpoint in front of a second,
real ComfyUI — with the remote progress drawn on the group and the result arriving
downstream.

Screenshots of every step: artifacts/browser/<test>/NN-<step>.png.
"""

from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest
import requests
from PIL import Image

from support.comfy_host import selected_front_end
from support.simulator import Simulator

pytestmark = pytest.mark.browser

INPUT_NAME = "rh_group_input.png"
SIZE = (96, 64)  # width, height of the input image


@pytest.fixture(scope="module")
def remote(plain_comfy):
    """The simulator with its native endpoint relaying to a second, real ComfyUI."""
    with Simulator(comfyui_url=plain_comfy.base_url) as sim:
        yield sim


@pytest.fixture(scope="module")
def host(comfy_host_factory, remote):
    host = comfy_host_factory(env=remote.pack_env(), fresh=True, name="group")
    host.assert_pack_imported_cleanly()
    pixels = np.random.default_rng(12).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    host.upload_image(buf.getvalue(), INPUT_NAME)
    return host


def wait_until(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def wait_js(page, script: str, arg=None, timeout: float = 30_000):
    return page.page.wait_for_function(script, arg=arg, timeout=timeout).json_value()


# The graph: LoadImage → [group "Remote part": ImageScaleBy → ImageInvert → ImageBlur] → PreviewImage.
GRAPH = """
    const load = mk('LoadImage', 0, 110);
    load.widgets.find(w => w.name === 'image').value = '%s';
    const scale = mk('ImageScaleBy', 390, 110);
    scale.widgets.find(w => w.name === 'scale_by').value = %s;
    const invert = mk('ImageInvert', 740, 110);
    const blur = mk('ImageBlur', 740, 260);
    blur.widgets.find(w => w.name === 'blur_radius').value = %s;
    const preview = mk('PreviewImage', 1140, 110);
    load.connect(0, scale, 0);
    scale.connect(0, invert, 0);
    invert.connect(0, blur, 0);
    blur.connect(0, preview, 0);
    const group = new LiteGraph.LGraphGroup('Remote part');
    group.pos = [360, 10];
    group.size = [720, 400];
    g.add(group);
    return {load: load.id, scale: scale.id, invert: invert.id, blur: blur.id, preview: preview.id};
"""


def build(page, scale_by: float = 1.0, blur_radius: int = 3) -> dict:
    return page.build_graph(GRAPH % (INPUT_NAME, scale_by, blur_radius))


def group_title_point(page, index: int = 0) -> tuple[float, float]:
    """Page coordinates of a point in the middle-left of a group's title bar."""
    return tuple(page.js("""(index) => {
        const group = app.graph.groups[index];
        const rect = app.canvas.canvas.getBoundingClientRect();
        const ratio = app.canvas.canvas.width / rect.width;
        const [x, y] = app.canvas.ds.convertOffsetToCanvas([group.pos[0] + group.size[0] * 0.4, group.pos[1] + 12]);
        return [rect.left + x / ratio, rect.top + y / ratio];
    }""", index))


def group_menu(page, index: int = 0):
    """Right-clicks the group's title bar; returns the open context menu."""
    page.page.mouse.click(*group_title_point(page, index), button="right")
    menu = page.page.locator(".litecontextmenu").first
    menu.wait_for()
    return menu


def menu_entry(page, text: str):
    return page.page.locator(".litecontextmenu .litemenu-entry", has_text=text).first


def group_flags(page, index: int = 0):
    return page.js("(index) => app.graph.groups[index].flags ?? null", index)


def graph_clip(page, margin: float = 16) -> dict:
    """The page rectangle around every node and group (for a screenshot of the graph only)."""
    return page.js("""(m) => {
        const rect = app.canvas.canvas.getBoundingClientRect();
        const ratio = app.canvas.canvas.width / rect.width;
        let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        const boxes = [...app.graph.nodes.map(n => n.getBounding()), ...app.graph.groups.map(g => [...g.pos, ...g.size])];
        for (const [x, y, w, h] of boxes) {
            const [ax, ay] = app.canvas.ds.convertOffsetToCanvas([x, y]);
            const [bx, by] = app.canvas.ds.convertOffsetToCanvas([x + w, y + h]);
            x0 = Math.min(x0, ax); y0 = Math.min(y0, ay); x1 = Math.max(x1, bx); y1 = Math.max(y1, by);
        }
        return {x: rect.left + x0 / ratio - m, y: rect.top + y0 / ratio - m,
                width: (x1 - x0) / ratio + 2 * m, height: (y1 - y0) / ratio + 2 * m};
    }""", margin)


def save_profile(host, name: str, key: str) -> None:
    resp = requests.post(f"{host.base_url}/runninghub/profiles/{name}", json={"add_keys": [key]}, timeout=30)
    assert resp.status_code == 200, resp.text


def test_the_group_menu_marks_a_group_and_the_saved_workflow_keeps_it_without_a_key(host, remote, open_page):
    save_profile(host, "studio", remote.keys[1])
    page = open_page(host)
    build(page)
    page.shot("group")

    group_menu(page)
    page.shot("menu")
    menu_entry(page, "Run on RunningHub").click()
    assert group_flags(page) == {"rh_remote": {"account": "default"}}
    page.page.wait_for_timeout(300)
    drawn = page.js("() => app.graph.groups[0].rhDrawn")
    assert drawn["badge"] == "☁ RunningHub · default", drawn
    page.shot("marked")

    # The account: a profile the server knows (names only, never a key).
    group_menu(page)
    menu_entry(page, "RunningHub account: default").click()
    menu_entry(page, "studio").wait_for()
    page.shot("accounts")
    menu_entry(page, "studio").click()
    assert group_flags(page) == {"rh_remote": {"account": "studio"}}
    page.page.wait_for_timeout(300)
    assert page.js("() => app.graph.groups[0].rhDrawn.badge") == "☁ RunningHub · studio"

    # Saved through the front end's own Save: the file holds the choice and no key.
    page.js("() => { app.extensionManager.command.execute('Comfy.SaveWorkflow'); }")
    name_input = page.page.get_by_role("dialog").locator("input").first
    name_input.wait_for()
    name_input.fill("remote-group")
    name_input.press("Enter")
    path = host.user_dir / "default" / "workflows" / "remote-group.json"
    wait_until(path.exists, timeout=30, what="the saved workflow")
    page.shot("saved")
    text = path.read_text()
    workflow = json.loads(text)
    (group,) = workflow["groups"]
    assert group["title"] == "Remote part" and group["flags"] == {"rh_remote": {"account": "studio"}}
    for key in remote.keys:
        assert key not in text and key[-8:] not in text
    assert "rh_remote" not in json.dumps(workflow["nodes"])

    # Loaded again (a fresh graph from the file): the group is still marked and drawn so.
    page.js("async (data) => { app.graph.clear(); await app.loadGraphData(data); }", workflow)
    assert group_flags(page) == {"rh_remote": {"account": "studio"}}
    page.page.wait_for_timeout(300)
    assert page.js("() => app.graph.groups[0].rhDrawn.badge") == "☁ RunningHub · studio"
    page.shot("reloaded")

    # The toggle: stop running it on RunningHub.
    group_menu(page)
    menu_entry(page, "Stop running on RunningHub").click()
    assert "rh_remote" not in (group_flags(page) or {})
    assert not page.log.page_errors, page.log.page_errors


TOOLBOX_LABEL = "Run the selected groups on RunningHub (on/off)"


def select_group(page, index: int = 0) -> None:
    """Clicks the group's title bar: the group alone is selected, and its toolbox shows."""
    page.js("() => app.canvas.deselectAll?.()")
    page.page.mouse.click(*group_title_point(page, index))
    wait_js(page, "(index) => [...app.canvas.selectedItems].includes(app.graph.groups[index])", index)


def test_the_toolbox_of_a_selected_group_marks_and_unmarks_it(host, remote, open_page):
    page = open_page(host)
    build(page)
    page.js("""() => { const g = new LiteGraph.LGraphGroup('Second'); g.pos = [360, 460]; g.size = [300, 120];
                       app.graph.add(g); app.canvas.setDirty(true, true); }""")
    select_group(page)
    button = page.page.locator(".selection-toolbox button:has(.pi-cloud)")
    button.wait_for()
    assert button.count() == 1
    # The front end names the button from the pack's locales/<lang>/commands.json.
    assert page.js("() => app.extensionManager.command.commands.find(c => c.id === 'RunningHub.Group.ToggleRemote')"
                   "?.label") == TOOLBOX_LABEL
    if selected_front_end() == "1.58.1":  # its toolbox buttons carry the label; 1.32's show it as a tooltip only
        assert button.get_attribute("aria-label") == TOOLBOX_LABEL
    page.shot("toolbox")

    button.click()
    assert group_flags(page) == {"rh_remote": {"account": "default"}}
    assert "rh_remote" not in (group_flags(page, 1) or {})  # only the selected group
    page.page.wait_for_timeout(300)
    assert page.js("() => app.graph.groups[0].rhDrawn.badge") == "☁ RunningHub · default"
    page.shot("marked")

    # Both selected, one marked: the toggle marks the other; pressed again, it unmarks both.
    page.js("() => app.canvas.select(app.graph.groups[1])")
    wait_js(page, "() => app.canvas.selectedItems.size === 2")
    button.wait_for()
    button.click()
    assert group_flags(page) == {"rh_remote": {"account": "default"}}
    assert group_flags(page, 1) == {"rh_remote": {"account": "default"}}
    button.click()
    assert "rh_remote" not in (group_flags(page) or {}) and "rh_remote" not in (group_flags(page, 1) or {})
    # A node selected alone gets no such button.
    page.js("() => { app.canvas.deselectAll(); app.canvas.select(app.graph.nodes[0]); }")
    page.page.locator(".selection-toolbox").first.wait_for()
    assert page.page.locator(".selection-toolbox button:has(.pi-cloud)").count() == 0
    assert not page.log.page_errors, page.log.page_errors


# Records, in the page, every different thing the first group shows while it runs.
RECORD_JS = """() => {
    window.rhSeen = [];
    clearInterval(window.rhSeenTimer);
    window.rhSeenTimer = setInterval(() => {
        const drawn = app.graph.groups[0]?.rhDrawn;
        const last = window.rhSeen.at(-1);
        if (drawn && (!last || last.status !== drawn.status || last.fraction !== drawn.fraction)) window.rhSeen.push({...drawn});
    }, 25);
}"""


def run_button(page):
    return page.page.get_by_role("button", name="Run", exact=True).first


def test_a_marked_group_runs_on_runninghub_with_its_progress_on_the_group(host, remote, open_page):
    remote.reset_counts()
    page = open_page(host)
    ids = build(page, scale_by=6.0, blur_radius=12)
    group_menu(page)
    menu_entry(page, "Run on RunningHub").click()
    assert group_flags(page) == {"rh_remote": {"account": "default"}}

    # "Export (API)" builds the same prompt as the queue: the group is one RH Remote Group node.
    output = page.js("async () => (await app.graphToPrompt()).output")
    [group_id] = [k for k, v in output.items() if v["class_type"] == "RHRemoteGroup"]
    assert set(output) == {str(ids["load"]), str(ids["preview"]), group_id}
    assert output[str(ids["preview"])]["inputs"]["images"] == [group_id, 0]
    spec = json.loads(output[group_id]["inputs"]["group"])
    assert sorted(spec["prompt"], key=int) == [str(ids["scale"]), str(ids["invert"]), str(ids["blur"])]
    assert output[group_id]["inputs"]["account"] == "default"
    assert remote.count("native/prompt") == 0, "building the prompt sends nothing"

    page.js(RECORD_JS)
    history_before = set(host.history())
    run_button(page).click()
    wait_js(page, "() => app.graph.groups[0].rhDrawn?.state === 'RUNNING'", timeout=60_000)
    # the README's picture (docs/images/remote-group.png): the group while it runs remotely
    page.page.screenshot(path=str(page.artifacts / "remote-group.png"), clip=graph_clip(page))
    page.shot("running")
    wait_js(page, "() => app.graph.groups[0].rhDrawn?.state === 'SUCCESS'", timeout=120_000)
    page.page.wait_for_timeout(300)
    page.shot("done")
    seen = page.js("() => window.rhSeen")
    statuses = [s["status"] for s in seen]
    assert any(s.startswith("running · ") for s in statuses), statuses
    # the remote node that runs, by class and id, and the remote prompt's nodes done / total
    assert any(f"ImageBlur #{ids['blur']}" in s or "nodes " in s for s in statuses), statuses
    assert any(s["fraction"] is not None and 0 < s["fraction"] < 1 for s in seen) or \
        any(s["fraction"] == 1 for s in seen), seen
    final = page.js("() => app.graph.groups[0].rhDrawn")
    assert final["status"].startswith("done · ") and final["fraction"] == 1, final
    assert remote.count("native/prompt") == 1

    # The result arrived downstream: the local Preview Image shows the remote's image.
    wait_js(page, "(id) => (app.graph.getNodeById(id).imgs?.length ?? 0) > 0", ids["preview"], timeout=30_000)
    host.wait_idle()
    [entry] = [h for key, h in host.history().items() if key not in history_before]
    assert entry["status"]["status_str"] == "success", entry["status"]
    (image,) = entry["outputs"][str(ids["preview"])]["images"]
    pixels = np.asarray(Image.open(io.BytesIO(host.view_bytes(image["filename"], image["subfolder"], image["type"]))))
    assert pixels.shape[:2] == (SIZE[1] * 6, SIZE[0] * 6)
    page.shot("result-downstream")

    # The PNG and history carry the workflow with the group's setting, and no key.
    text = json.dumps(entry)
    assert '"rh_remote": {"account": "default"}' in text
    for key in remote.keys:
        assert key not in text
    assert not page.log.page_errors, page.log.page_errors


def test_a_subgraph_inside_the_group_goes_with_its_flattened_node_ids(host, remote, open_page):
    """A subgraph node in a marked group: the API prompt names its inner nodes `outer:inner`,
    and those are the ids the group sends; the whole group runs remotely."""
    remote.reset_counts()
    page = open_page(host)
    ids = build(page, scale_by=2.0)
    sub = page.js("""(ids) => {
        app.graph.convertToSubgraph(new Set([ids.scale, ids.invert].map(id => app.graph.getNodeById(id))));
        const node = app.graph.nodes.find(n => n.subgraph);
        window.rhTestCaptureState();
        return {id: node.id, inner: node.subgraph.nodes.map(n => n.id)};
    }""", ids)
    group_menu(page)
    menu_entry(page, "Run on RunningHub").click()
    output = page.js("async () => (await app.graphToPrompt()).output")
    [group_id] = [k for k, v in output.items() if v["class_type"] == "RHRemoteGroup"]
    spec = json.loads(output[group_id]["inputs"]["group"])
    assert set(spec["prompt"]) == {f"{sub['id']}:{i}" for i in sub["inner"]} | {str(ids["blur"])}
    assert set(output) == {str(ids["load"]), str(ids["preview"]), group_id}
    page.shot("subgraph-in-group")

    history_before = set(host.history())
    run_button(page).click()
    wait_js(page, "() => app.graph.groups[0].rhDrawn?.state === 'SUCCESS'", timeout=120_000)
    host.wait_idle()
    [entry] = [h for key, h in host.history().items() if key not in history_before]
    assert entry["status"]["status_str"] == "success", entry["status"]
    (image,) = entry["outputs"][str(ids["preview"])]["images"]
    pixels = np.asarray(Image.open(io.BytesIO(host.view_bytes(image["filename"], image["subfolder"], image["type"]))))
    assert pixels.shape[:2] == (SIZE[1] * 2, SIZE[0] * 2)
    assert remote.count("native/prompt") == 1
    page.shot("subgraph-done")


def test_a_group_that_cannot_run_remotely_shows_why_and_queues_nothing(host, remote, open_page):
    remote.reset_counts()
    page = open_page(host)
    page.build_graph("""
        const latent = mk('EmptyLatentImage', 380, 60);
        const upscale = mk('LatentUpscaleBy', 800, 60);
        latent.connect(0, upscale, 0);
        const group = new LiteGraph.LGraphGroup('Latent maker');
        group.pos = [350, -10];
        group.size = [380, 300];
        g.add(group);
    """)
    group_menu(page)
    menu_entry(page, "Run on RunningHub").click()
    queued_before = host.queue()
    history_before = set(host.history())
    run_button(page).click()
    # The front end's own error toast shows the route's message, once (a PrimeVue toast up to
    # front end 1.4x, its own toasts later, which also announce it in an "Error. …" live region).
    toast = page.page.get_by_text(re.compile(r"^Nothing was queued\."))
    toast.first.wait_for(timeout=30_000)
    message = toast.first.inner_text()
    assert 'Group "Latent maker" cannot run on RunningHub' in message and "carries LATENT" in message, message
    page.page.wait_for_timeout(1000)
    page.shot("refused")
    assert toast.count() == 1
    assert host.queue() == queued_before and set(host.history()) == history_before
    assert remote.count("native/prompt") == 0 and remote.count("native/upload") == 0
    # The front end logs the error it showed, with its stack (the pack's group.js): expected
    # here, so it is taken off the list of the pack's console messages that fail a test.
    refusal = [m for m in page.log.pack_messages if m.startswith("GroupConvertError: Nothing was queued.")]
    assert refusal and len(refusal) == len(page.log.pack_messages), page.log.pack_messages
    page.log.pack_messages.clear()
    # Saving or exporting the workflow still works (the front end's exports build the prompt
    # with no graph argument): the exported API prompt keeps the group local, and says so.
    exported = page.js("""async () => {
        const p = await app.graphToPrompt();
        return {groups: p.workflow.groups.length, classes: Object.values(p.output).map((n) => n.class_type)};
    }""")
    assert exported["groups"] == 1, exported
    assert "LatentUpscaleBy" in exported["classes"] and "RHRemoteGroup" not in exported["classes"], exported
    warning = page.page.get_by_text(re.compile(r"^Exported with the group running locally: "))
    warning.first.wait_for(timeout=10_000)
    assert "carries LATENT" in warning.first.inner_text()
    assert remote.count("native/prompt") == 0
