"""The pack's front end in a real browser: it loads cleanly, keys set in the settings dialog
go only to the server's credentials file, the field picker fills an override from a
workflow the simulator holds and the graph then runs, and the zh locale shows Chinese.

Screenshots of every step: artifacts/browser/<test>/NN-<step>.png.
"""

from __future__ import annotations

import io
import json
import re
import stat

import numpy as np
import pytest
import requests
from PIL import Image

from support.comfy_host import PACK_DIR_NAME
from support.secret_scan import remember
from support.simulator import WORKFLOWS

pytestmark = pytest.mark.browser

INVERT = WORKFLOWS["invert"]  # LoadImage(1) -> ImageInvert(2) -> SaveImage(3)
INPUT_NAME = "rh_browser_input.png"
INPUT_RGB = (10, 200, 30)
BAD_KEY = "0123456789abcdef0123456789abcdef"  # a key the simulator does not know


@pytest.fixture(scope="module")
def host(comfy_host_factory, sim):
    host = comfy_host_factory(env={"RUNNINGHUB_BASE_URL": sim.base_url}, fresh=True, name="browser")
    host.assert_pack_imported_cleanly()
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), INPUT_RGB).save(buf, "PNG")
    host.upload_image(buf.getvalue(), INPUT_NAME)
    return host


@pytest.fixture
def fresh(host, sim_clean):
    """No credentials and no saved workflows left by an earlier test."""
    (host.user_dir / "runninghub" / "credentials.json").unlink(missing_ok=True)
    return host


def strip_origin(text: str) -> str:
    """A console text without the varying host:port, to compare two servers' pages."""
    return re.sub(r"https?://127\.0\.0\.1:\d+", "<origin>", text)


def save_key(host, profile: str, key: str) -> None:
    resp = requests.post(f"{host.base_url}/runninghub/profiles/{profile}", json={"add_keys": [key]}, timeout=30)
    assert resp.status_code == 200, resp.text


def confirm_delete(page) -> None:
    """Clicks the confirm dialog's Delete button (front end 1.5x puts an icon glyph before its name)."""
    page.page.get_by_role("dialog").get_by_role("button", name=re.compile(r"^\W*Delete$")).click()


def wait_js(page, script: str, arg=None, timeout: float = 30_000):
    return page.page.wait_for_function(script, arg=arg, timeout=timeout).json_value()


# --------------------------------------------------------------------------- loading


def test_extension_loads_without_console_errors(fresh, plain_comfy, open_page):
    page = open_page(fresh, sub="with-pack")
    page.shot("loaded-with-pack")

    # the pack is there: its settings, its four nodes, its strings
    state = page.js("""() => ({
        settings: Object.keys(app.extensionManager.setting.settings).filter(k => k.startsWith('RunningHub.')),
        nodes: ['RHUpload', 'RHNodeOverride', 'RHRunWorkflow', 'RHFetchOutputs']
            .filter(t => LiteGraph.registered_node_types[t]),
    })""")
    assert sorted(state["settings"]) == ["RunningHub.Accounts.Profiles", "RunningHub.Overrides.CheckOnChange"]
    assert len(state["nodes"]) == 4
    page.build_graph("""
        mk('RHNodeOverride', 0, 0); mk('RHRunWorkflow', 420, 0); mk('RHUpload', 0, 330); mk('RHFetchOutputs', 420, 330);
    """)
    page.page.wait_for_timeout(1500)  # let the debounced override check run
    page.shot("pack-nodes-on-canvas")
    labels = page.js("() => app.graph.nodes.map(n => [n.comfyClass, n.widgets?.find(w => w.name === 'rh_pick')?.label])")
    assert ["RHNodeOverride", "Pick node and field…"] in labels

    baseline = open_page(plain_comfy, sub="without-pack", with_pack=False)
    baseline.page.wait_for_timeout(2000)
    baseline.shot("loaded-without-pack")
    page.page.wait_for_timeout(500)

    assert [e for e in page.log.page_errors if PACK_DIR_NAME in e or "runninghub" in e.lower()] == []
    baseline_page_errors = {strip_origin(e) for e in baseline.log.page_errors}
    assert [e for e in page.log.page_errors if strip_origin(e) not in baseline_page_errors] == []
    # Every request of the pack answered; resource errors of the page are the front end's own.
    assert page.log.pack_failures() == []
    ours = [(kind, text) for kind, text in page.log.console
            if kind in ("error", "warning") and (PACK_DIR_NAME in text or "runninghub" in text.lower())]
    assert ours == []
    baseline_errors = {strip_origin(t) for t in baseline.log.errors()}
    resource_error = re.compile(r"^Failed to load resource: ")
    extra = [t for t in page.log.errors() if strip_origin(t) not in baseline_errors and not resource_error.match(t)]
    assert extra == [], extra
    # ...and the server's failed requests are ones that fail without the pack too (user.css,
    # userdata listings); outside requests fail for want of a network, with or without it.
    base_failed = {strip_origin(url) for url, _ in baseline.log.failed}
    local_failed = [strip_origin(u) for u, _ in page.log.failed if u.startswith(fresh.base_url)]
    assert [u for u in local_failed if u not in base_failed] == []


# --------------------------------------------------------------------------- keys
# (the dialog adds, tests, replaces and removes keys; a key is removed by the opaque id the
# server hands out, never by its last four characters)


def test_key_set_in_settings_reaches_only_the_credentials_file(fresh, sim, open_page):
    key, second = sim.keys
    remember([BAD_KEY])  # the end-of-session scan looks for it too
    page = open_page(fresh)
    page.open_settings("RunningHub")
    panel = page.page.locator("[data-testid=rh-settings]")
    panel.get_by_text("No profile yet").wait_for()
    page.shot("settings-empty")

    key_input = panel.locator(".rh-key-input")
    assert key_input.get_attribute("type") == "password"
    key_input.fill(key)
    page.shot("key-typed")  # the field shows dots
    panel.locator(".rh-add-key").click()
    card = panel.locator(".rh-profile[data-profile=default]")
    card.locator(f".rh-key[data-key='…{key[-4:]}']").wait_for()
    assert key_input.input_value() == ""
    page.shot("key-saved")

    card.locator(".rh-test").click()
    result = card.locator(".rh-result.rh-ok")
    result.wait_for()
    text = result.inner_text()
    assert f"…{key[-4:]}: 100000 coins · 0 running task(s) · CNY · {sim.base_url.split('//')[1]}" == text
    page.shot("key-tested")

    # a second profile on the other site; a bad key shows the actionable error
    panel.locator(".rh-profile-name-input").fill("work")
    panel.locator(".rh-site").select_option("ai")
    key_input.fill(BAD_KEY)
    key_input.press("Enter")
    work = panel.locator(".rh-profile[data-profile=work]")
    work.locator(".rh-key[data-key='…cdef']").wait_for()
    assert work.locator(".rh-site-chip").inner_text() == "www.runninghub.ai"
    work.locator(".rh-test").click()
    work.locator(".rh-result.rh-bad").wait_for()
    assert "refused the key …cdef" in work.locator(".rh-result").inner_text()
    page.shot("bad-key-tested")

    # replace the bad key by a good one, then delete the profile (with the confirm dialog)
    key_input.fill(second)
    panel.locator(".rh-replace-keys").click()
    work.locator(f".rh-key[data-key='…{second[-4:]}']").wait_for()
    assert work.locator(".rh-key").count() == 1

    # add a second key, then remove it by the opaque id the server handed out (confirm dialog)
    key_input.fill(BAD_KEY)
    key_input.press("Enter")
    extra = work.locator(".rh-key[data-key='…cdef']")
    extra.wait_for()
    assert re.fullmatch(r"k[0-9a-f]{20}", extra.get_attribute("data-key-id"))
    extra.locator(".rh-remove-key").click()
    confirm_delete(page)
    extra.wait_for(state="detached")
    assert work.locator(".rh-key").count() == 1
    page.shot("key-removed")
    work.locator(".rh-delete-profile").click()
    confirm_delete(page)
    work.wait_for(state="detached")
    page.shot("profile-deleted")

    credentials = fresh.user_dir / "runninghub" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    stored = json.loads(credentials.read_text())
    assert stored["profiles"] == {"default": {"site": "cn", "base_url": None, "keys": [key]}}

    # The key is nowhere else: the page, its storage, the settings file, an exported and a
    # saved workflow, the server's log.
    page.close_dialogs()
    page.build_graph("""
        const ov = mk('RHNodeOverride', 0, 0); const run = mk('RHRunWorkflow', 420, 0);
        ov.connect(0, run, run.findInputSlot('overrides'));
        run.widgets.find(w => w.name === 'workflow_id').value = '%s';
    """ % INVERT)
    page.page.wait_for_timeout(1200)
    with page.page.expect_download() as download:
        page.js("() => app.extensionManager.command.execute('Comfy.ExportWorkflow')")
    exported = download.value.path().read_text()
    assert '"RHRunWorkflow"' in exported and '"default"' in exported  # the profile name only
    page.page.keyboard.press("Control+s")
    name_box = page.page.get_by_role("dialog").locator("input")
    name_box.fill("rh-key-check")
    name_box.press("Enter")
    saved = fresh.user_dir / "default" / "workflows" / "rh-key-check.json"
    page.page.wait_for_function("() => true")
    for _ in range(50):
        if saved.exists():
            break
        page.page.wait_for_timeout(100)
    page.shot("workflow-saved")
    storage = page.storage_dump()
    assert "RHRunWorkflow" in storage, "the dump holds the persisted workflow (the check can see it)"
    settings_file = (fresh.user_dir / "default" / "comfy.settings.json").read_text()
    assert "Comfy.Locale" in settings_file
    places = {
        "exported workflow": exported,
        "saved workflow": saved.read_text(),
        "page storage": storage,
        "settings file": settings_file,
        "page DOM": page.js("() => document.documentElement.outerHTML"),
        "input values": page.js("() => [...document.querySelectorAll('input')].map(i => i.value).join('\\n')"),
        "server log": fresh.log_text(),
    }
    for where, text in places.items():
        for secret in (key, second, BAD_KEY):
            assert secret not in text, f"a key is in the {where}"


# --------------------------------------------------------------------------- picker and run


GRAPH = """
    const load = mk('LoadImage', 0, 0);
    load.widgets.find(w => w.name === 'image').value = '%(input)s';
    const up = mk('RHUpload', 340, 0);
    const ov = mk('RHNodeOverride', 620, 0);
    const ov2 = mk('RHNodeOverride', 620, 300);
    const run = mk('RHRunWorkflow', 1050, 160);
    const fetch = mk('RHFetchOutputs', 1050, 520);
    const save = mk('SaveImage', 330, 320);
    save.widgets.find(w => w.name === 'filename_prefix').value = 'rh_browser';
    load.connect(0, up, up.findInputSlot('image'));
    up.connect(0, ov, ov.findInputSlot('value'));
    ov.connect(0, ov2, ov2.findInputSlot('overrides'));
    ov2.connect(0, run, run.findInputSlot('overrides'));
    run.connect(0, fetch, fetch.findInputSlot('task'));
    fetch.connect(0, save, save.findInputSlot('images'));
    run.widgets.find(w => w.name === 'workflow_id').value = '%(workflow)s';
    return {ov: ov.id, ov2: ov2.id, run: run.id, save: save.id};
"""


def test_picker_fills_overrides_and_the_graph_runs(fresh, sim, open_page):
    save_key(fresh, "default", sim.keys[0])
    page = open_page(fresh)
    ids = page.build_graph(GRAPH % {"input": INPUT_NAME, "workflow": INVERT})
    wait_js(page, "(id) => app.graph.getNodeById(id).rhCheck.state === 'none'", ids["ov"])
    page.shot("graph-built")

    # The first override is two links away from RH Run Workflow (through the second one).
    page.page.mouse.click(*page.widget_center(ids["ov"], "rh_pick"))
    picker = page.page.locator(".rh-picker")
    picker.locator("tbody tr").first.wait_for()
    assert picker.locator(".rh-wf").input_value() == INVERT
    assert picker.locator(".rh-source").inner_text() == f"From the RH Run Workflow node #{ids['run']}"
    rows = picker.locator("tbody tr")
    assert rows.count() == 3
    page.shot("picker-open")
    picker.locator(".rh-search").fill("load")
    assert rows.count() == 2  # LoadImage's image and upload fields
    page.shot("picker-search")
    picker.locator("tr[data-node-id='1'][data-field='image']").click()
    picker.wait_for(state="detached")
    values = page.widget_values(ids["ov"])
    assert (values["node_id"], values["field_name"], values["text_value"]) == ("1", "image", "")  # value is wired

    # A wrong entry typed by hand is flagged on the node before anything is queued.
    page.js("""(id) => { const n = app.graph.getNodeById(id);
        n.widgets.find(w => w.name === 'node_id').value = '3';
        n.widgets.find(w => w.name === 'field_name').value = 'filename';
        window.rhTestCaptureState(); }""", ids["ov2"])
    wait_js(page, "(id) => app.graph.getNodeById(id).rhCheck.state === 'bad'", ids["ov2"])
    wait_js(page, "(id) => app.graph.getNodeById(id).rhCheck.state === 'ok'", ids["ov"])
    flag = page.page.locator(".rh-check[data-state=bad]")
    assert flag.inner_text() == "✗ node 3 (SaveImage) has no field 'filename'; its fields: filename_prefix"
    assert page.page.locator(".rh-check[data-state=ok]").inner_text() == "✓ node 1 (Load Image) · image · str"
    page.shot("wrong-entry-flagged")

    # Fix it with the picker: an empty text_value takes the field's current value to edit.
    page.page.mouse.click(*page.widget_center(ids["ov2"], "rh_pick"))
    picker.locator("tbody tr").first.wait_for()
    picker.locator(".rh-search").fill("prefix")
    picker.locator(".rh-search").press("Enter")
    picker.wait_for(state="detached")
    values = page.widget_values(ids["ov2"])
    assert (values["node_id"], values["field_name"], values["text_value"]) == ("3", "filename_prefix", "inverted")
    page.js("""(id) => { const w = app.graph.getNodeById(id).widgets.find(w => w.name === 'text_value');
        w.value = 'picked'; window.rhTestCaptureState(); }""", ids["ov2"])
    wait_js(page, "(id) => app.graph.getNodeById(id).rhCheck.state === 'ok'", ids["ov2"])
    assert page.page.locator(".rh-check[data-state=bad]").count() == 0
    page.shot("entries-checked")
    assert sim.count("create") == 0, "checking and picking never creates a task"

    # Queue it with the Run button and watch the status.
    page.page.get_by_role("button", name="Run", exact=True).first.click()
    box = f".rh-status[data-node='{ids['run']}']"
    page.page.locator(f"{box}[data-state=RUNNING]").wait_for()
    page.page.wait_for_timeout(1300)
    status = page.page.locator(box)
    line = status.locator(".rh-status-line").inner_text()
    assert re.fullmatch(r"RunningHub: running · [1-9]\d* s", line), line
    page.shot("running")
    page.page.locator(f"{box}[data-state=SUCCESS]").wait_for(timeout=60_000)
    page.page.wait_for_timeout(300)
    task_id = re.fullmatch(r"Task (\d{19})", status.locator(".rh-task").inner_text()).group(1)
    assert re.fullmatch(r"RunningHub: done · \d+ s", status.locator(".rh-status-line").inner_text())
    assert re.fullmatch(r"Cost: 17 coins, \d+ s", status.locator(".rh-status-detail").inner_text())
    assert status.locator(".rh-copy").is_visible()
    widgets = page.js("(id) => app.graph.getNodeById(id).widgets.map(w => w.name)", ids["run"])
    assert "$$node-text-preview" not in widgets, "the status widget replaces the generic text preview"
    page.shot("done")

    # The remote task got exactly the picked overrides, and the local graph saved the result.
    assert sim.count("create") == 1
    task = sim.task(task_id)
    assert [(o["nodeId"], o["fieldName"]) for o in task["overrides"]] == [("1", "image"), ("3", "filename_prefix")]
    assert task["graph"]["1"]["inputs"]["image"].startswith("api/")
    assert task["graph"]["3"]["inputs"]["filename_prefix"] == "picked"
    history = [h for h in fresh.history().values() if str(ids["save"]) in h.get("outputs", {})]
    assert len(history) == 1 and history[0]["status"]["status_str"] == "success"
    (image,) = history[0]["outputs"][str(ids["save"])]["images"]
    png = fresh.view_bytes(image["filename"], image["subfolder"], image["type"])
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (24, 32, 3)
    assert np.abs(pixels - np.array([255 - c for c in INPUT_RGB])).max() <= 1
    metadata = json.dumps(Image.open(io.BytesIO(png)).info)
    assert "RHRunWorkflow" in metadata  # the PNG carries the workflow...
    assert sim.keys[0] not in metadata and sim.keys[0] not in json.dumps(fresh.history())  # ...and no key


def test_picker_takes_a_typed_workflow_id_for_an_unconnected_override(fresh, sim, open_page):
    save_key(fresh, "default", sim.keys[0])
    page = open_page(fresh)
    ids = page.build_graph("return {ov: mk('RHNodeOverride', 0, 0).id};")
    wait_js(page, "(id) => app.graph.getNodeById(id).rhCheck?.state === 'none'", ids["ov"])
    page.page.mouse.click(*page.widget_center(ids["ov"], "rh_pick"))
    picker = page.page.locator(".rh-picker")
    picker.locator(".rh-picker-message").get_by_text("Enter the workflow id").wait_for()
    picker.locator(".rh-wf").fill("1999999999999999999")
    picker.locator(".rh-load").click()
    picker.locator(".rh-picker-message.rh-bad").wait_for()
    assert "380" in picker.locator(".rh-picker-message").inner_text()
    page.shot("unknown-workflow")
    picker.locator(".rh-wf").fill(WORKFLOWS["empty"])
    picker.locator(".rh-wf").press("Enter")
    picker.locator("tr[data-node-id='1'][data-field='width']").click()
    values = page.widget_values(ids["ov"])
    assert (values["node_id"], values["field_name"], values["text_value"]) == ("1", "width", "64")
    props = page.js("(id) => app.graph.getNodeById(id).properties", ids["ov"])
    assert (props["rh_workflow_id"], props["rh_profile"]) == (WORKFLOWS["empty"], "default")
    wait_js(page, "(id) => app.graph.getNodeById(id).rhCheck.state === 'ok'", ids["ov"])
    page.shot("typed-workflow-picked")

    # The workflow round-trips: the pack's own widgets are not saved, so the values stay in place.
    saved = page.js("(id) => app.graph.getNodeById(id).serialize()", ids["ov"])
    assert saved["widgets_values"] == ["1", "width", "64"]
    page.js("async () => { await app.loadGraphData(structuredClone(app.graph.serialize())); }")
    names = page.js("(id) => app.graph.getNodeById(id).widgets.map(w => w.name)", ids["ov"])
    assert names == ["node_id", "field_name", "text_value", "rh_pick", "rh_check"]
    values = page.widget_values(ids["ov"])
    assert (values["node_id"], values["field_name"], values["text_value"]) == ("1", "width", "64")
    wait_js(page, "(id) => app.graph.getNodeById(id).rhCheck.state === 'ok'", ids["ov"])
    page.shot("reloaded")


def test_status_sums_up_a_sweep_of_runs(fresh, sim, open_page):
    """A batch of two images uploads as a list, so RH Run Workflow runs once per image: the
    status shows both runs, their costs and both task ids."""
    save_key(fresh, "default", sim.keys[0])
    page = open_page(fresh)
    ids = page.build_graph("""
        const empty = mk('EmptyImage', 0, 0);
        for (const [name, value] of [['width', 32], ['height', 24], ['batch_size', 2], ['color', 0x00ff00]])
            empty.widgets.find(w => w.name === name).value = value;
        const up = mk('RHUpload', 330, 0);
        const ov = mk('RHNodeOverride', 620, 0);
        const run = mk('RHRunWorkflow', 1050, 0);
        const fetch = mk('RHFetchOutputs', 1050, 380);
        const save = mk('SaveImage', 620, 380);
        empty.connect(0, up, up.findInputSlot('image'));
        up.connect(0, ov, ov.findInputSlot('value'));
        ov.connect(0, run, run.findInputSlot('overrides'));
        run.connect(0, fetch, fetch.findInputSlot('task'));
        fetch.connect(0, save, save.findInputSlot('images'));
        ov.widgets.find(w => w.name === 'node_id').value = '1';
        ov.widgets.find(w => w.name === 'field_name').value = 'image';
        run.widgets.find(w => w.name === 'workflow_id').value = '%s';
        return {run: run.id, save: save.id};
    """ % INVERT)
    page.page.locator(".rh-check[data-state=ok]").wait_for()
    page.page.get_by_role("button", name="Run", exact=True).first.click()
    box = f".rh-status[data-node='{ids['run']}']"
    status = page.page.locator(box)
    wait_js(page, "(sel) => /^RunningHub: 2 runs — .*running/.test(document.querySelector(sel)?.textContent)", box)
    line = status.locator(".rh-status-line").inner_text()
    assert re.fullmatch(r"RunningHub: 2 runs — .* · \d+ s", line), line
    page.shot("sweep-running")
    page.page.locator(f"{box}[data-state=SUCCESS]").wait_for(timeout=60_000)
    page.page.wait_for_timeout(300)
    assert re.fullmatch(r"RunningHub: 2 runs — 2 done · \d+ s", status.locator(".rh-status-line").inner_text())
    task_ids = [t["taskId"] for t in sim.tasks()]
    assert len(task_ids) == 2 and sim.count("create") == 2
    assert status.locator(".rh-task").inner_text() in (f"Tasks {task_ids[0]}, {task_ids[1]}",
                                                       f"Tasks {task_ids[1]}, {task_ids[0]}")
    assert status.locator(".rh-status-detail").inner_text().startswith("Cost: ")
    page.shot("sweep-done")


# --------------------------------------------------------------------------- zh


def test_zh_locale_shows_chinese_labels(fresh, sim, open_page):
    save_key(fresh, "default", sim.keys[0])
    page = open_page(fresh, locale="zh", browser_locale="zh-CN")
    ids = page.build_graph("""
        const ov = mk('RHNodeOverride', 0, 0); const run = mk('RHRunWorkflow', 440, 0);
        mk('RHUpload', 0, 340); mk('RHFetchOutputs', 440, 340);
        ov.connect(0, run, run.findInputSlot('overrides'));
        run.widgets.find(w => w.name === 'workflow_id').value = '%s';
        return {ov: ov.id, run: run.id};
    """ % INVERT)
    page.page.wait_for_timeout(1200)
    page.shot("zh-nodes")
    labels = page.js("""() => Object.fromEntries(app.graph.nodes.map(n => [n.comfyClass, {
        title: n.title,
        widgets: Object.fromEntries((n.widgets ?? []).map(w => [w.name, w.label ?? null])),
        inputs: Object.fromEntries((n.inputs ?? []).map(i => [i.name, i.localized_name ?? i.label ?? null])),
        outputs: (n.outputs ?? []).map(o => o.localized_name ?? o.label ?? null),
    }]))""")
    assert labels["RHNodeOverride"]["title"] == "RH 节点覆盖"
    assert labels["RHRunWorkflow"]["title"] == "RH 运行工作流"
    assert labels["RHUpload"]["title"] == "RH 上传"
    assert labels["RHFetchOutputs"]["title"] == "RH 获取输出"
    assert labels["RHNodeOverride"]["widgets"]["node_id"] == "节点 ID"
    assert labels["RHNodeOverride"]["widgets"]["rh_pick"] == "选择节点和字段…"
    assert labels["RHRunWorkflow"]["widgets"]["workflow_id"] == "工作流 ID"
    assert labels["RHRunWorkflow"]["inputs"]["overrides"] == "覆盖列表"
    assert labels["RHFetchOutputs"]["outputs"][0] == "图像"
    assert page.page.locator(f".rh-status[data-node='{ids['run']}']").inner_text() == "RunningHub：尚未运行"
    assert page.page.locator(".rh-check").first.inner_text() == "请用上方按钮选择远程节点和字段。"

    page.page.mouse.click(*page.widget_center(ids["ov"], "rh_pick"))
    picker = page.page.locator(".rh-picker")
    picker.locator("tbody tr").first.wait_for()
    assert picker.locator("h3").inner_text() == "选择远程工作流中的字段"
    assert picker.locator("th").all_inner_texts() == ["节点", "类型", "标题", "字段", "当前值", "值类型"]
    page.shot("zh-picker")
    page.close_dialogs()
    picker.wait_for(state="detached")

    page.open_settings("RunningHub")
    panel = page.page.locator("[data-testid=rh-settings]")
    panel.locator(".rh-profile[data-profile=default]").wait_for()
    dialog = page.page.get_by_role("dialog")
    assert dialog.get_by_role("heading", name="API 密钥与站点").is_visible()
    assert dialog.get_by_text("编辑时检查 RH 节点覆盖").is_visible()
    assert panel.locator(".rh-add-key").inner_text() == "添加密钥"
    assert panel.locator(".rh-test").inner_text() == "测试"
    page.shot("zh-settings")
    page.close_dialogs()

    # The node's help page (the selection toolbox's info button) is the Chinese doc.
    page.js("(id) => { app.canvas.deselectAll(); app.canvas.selectNode(app.graph.getNodeById(id)); }", ids["run"])
    page.page.locator("[data-testid=info-button]").click()
    help_heading = page.page.get_by_role("heading", name="RH 运行工作流").first
    help_heading.wait_for()
    assert page.page.get_by_text("运行期间").first.is_visible()
    page.shot("zh-node-help")


def test_a_new_run_node_keeps_its_seed_fixed_and_a_loaded_one_keeps_its_choice(fresh, open_page):
    """Re-queueing must not bill again by default; randomizing stays one click away."""
    page = open_page(fresh, sub="seed-control")
    fresh_value = page.build_graph("""
        const run = mk('RHRunWorkflow', 0, 0);
        return run.widgets.find(w => w.name === 'control_after_generate').value;
    """)
    assert fresh_value == "fixed"
    page.shot("new-run-node-fixed")
    loaded = page.js("""async () => {
        const run = app.graph._nodes.find(n => n.comfyClass === 'RHRunWorkflow');
        run.widgets.find(w => w.name === 'control_after_generate').value = 'randomize';
        const saved = JSON.parse(JSON.stringify(app.graph.serialize()));
        await app.loadGraphData(saved);
        const again = app.graph._nodes.find(n => n.comfyClass === 'RHRunWorkflow');
        return again.widgets.find(w => w.name === 'control_after_generate').value;
    }""")
    assert loaded == "randomize"


# --------------------------------------------------------------------------- template


def test_the_template_browser_shows_the_example_with_its_thumbnail(fresh, open_page):
    """example_workflows/RunningHub_upload_run_fetch.json with its .jpg beside it: the template
    browser lists it under the pack's name, with the picture loaded."""
    page = open_page(fresh, sub="template")
    page.js("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = page.page.get_by_role("dialog").first
    # The pack's category: an `option` of a list box up to front end 1.3x, a `button` from 1.4x on.
    dialog.get_by_role("option", name=PACK_DIR_NAME).or_(
        dialog.get_by_role("button", name=PACK_DIR_NAME)).first.click()
    # The picture: its URL up to 1.3x; from 1.5x on a blob: URL, named by the template's name.
    thumbnail = f"/workflow_templates/{PACK_DIR_NAME}/RunningHub_upload_run_fetch.jpg"
    size = wait_js(page, """([src, name]) => {
        const img = [...document.querySelectorAll('img')].find(i => i.src.endsWith(src) || i.alt === name);
        return img?.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null;
    }""", [thumbnail, "RunningHub_upload_run_fetch"])
    assert size == [1030, 240]
    page.shot("template-browser")


def test_the_progress_bar_moves_with_the_remote_steps(fresh, sim, open_page):
    """RH Run Workflow follows the task's websocket: the remote node and its steps show on
    the node, and the progress bar fills as the remote sampler steps."""
    sim.configure(run_seconds=8.0, progress_steps=16)
    save_key(fresh, "default", sim.keys[0])
    page = open_page(fresh)
    ids = page.build_graph("""
        const run = mk('RHRunWorkflow', 300, 0);
        const fetch = mk('RHFetchOutputs', 300, 380);
        const save = mk('SaveImage', 750, 0);
        run.connect(0, fetch, fetch.findInputSlot('task'));
        fetch.connect(0, save, save.findInputSlot('images'));
        run.widgets.find(w => w.name === 'workflow_id').value = '%s';
        return {run: run.id};
    """ % WORKFLOWS["empty"])
    page.page.get_by_role("button", name="Run", exact=True).first.click()
    box = f".rh-status[data-node='{ids['run']}']"
    bar = page.page.locator(f"{box} .rh-bar")
    bar.wait_for(state="visible", timeout=60_000)
    widths = []
    for _ in range(40):
        now = page.js("(sel) => Number(document.querySelector(sel)?.getAttribute('aria-valuenow'))", f"{box} .rh-bar")
        if now and (not widths or now != widths[-1]):
            widths.append(now)
            if len(widths) == 2:
                page.shot("remote-progress")
        if len(widths) >= 3 or page.page.locator(f"{box}[data-state=SUCCESS]").count():
            break
        page.page.wait_for_timeout(250)
    assert len(widths) >= 3 and widths == sorted(widths), widths
    assert "EmptyImage #1" in page.page.locator(f"{box} .rh-status-detail").inner_text()
    page.page.locator(f"{box}[data-state=SUCCESS]").wait_for(timeout=60_000)
    assert bar.is_hidden()  # the run is over: the bar gives way to the cost
