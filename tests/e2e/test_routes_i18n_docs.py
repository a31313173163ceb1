"""Translations and node docs against what a real ComfyUI serves for the pack.

- zh covers every node, input and output /object_info lists (names and tooltips), and
  nothing that no longer exists;
- every UI string key the front end uses exists in en and zh, and the two have the same keys;
- each node has help pages where front end 1.32 looks for them
  (/extensions/<pack>/docs/<Node>/<locale>.md, falling back to docs/<Node>.md), served by
  ComfyUI, naming every input and output of the node;
- ComfyUI's /i18n hands out the pack's locales.
"""

from __future__ import annotations

import json
import re

import pytest

from support.comfy_host import PACK_DIR_NAME, REPO_ROOT

pytestmark = pytest.mark.e2e

LOCALES = REPO_ROOT / "locales"
DOCS = REPO_ROOT / "web" / "docs"
WEB_JS = REPO_ROOT / "web" / "js"
CJK = re.compile(r"[\u4e00-\u9fff]")


def load(lang: str, name: str) -> dict:
    return json.loads((LOCALES / lang / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pack_nodes(comfy_with_pack) -> dict:
    ids = comfy_with_pack.assert_pack_imported_cleanly()
    info = comfy_with_pack.object_info()
    return {node_id: info[node_id] for node_id in ids}


def inputs_of(info: dict) -> dict[str, dict]:
    out = {}
    for section in ("required", "optional"):
        for name, spec in (info["input"].get(section) or {}).items():
            out[name] = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return out


def leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        keys |= leaf_keys(value, path) if isinstance(value, dict) else {path}
    return keys


def test_zh_translates_every_node_input_and_output(pack_nodes):
    zh = load("zh", "nodeDefs.json")
    assert sorted(zh) == sorted(pack_nodes), "zh/nodeDefs.json lists exactly the pack's nodes"
    for node_id, info in pack_nodes.items():
        entry = zh[node_id]
        assert CJK.search(entry["display_name"]) and CJK.search(entry["description"]), node_id
        inputs = inputs_of(info)
        assert sorted(entry["inputs"]) == sorted(inputs), f"{node_id}: inputs"
        for name, options in inputs.items():
            assert CJK.search(entry["inputs"][name]["name"]), f"{node_id}.{name}"
            if options.get("tooltip"):
                assert CJK.search(entry["inputs"][name].get("tooltip", "")), f"{node_id}.{name} tooltip"
        outputs = info["output_name"]
        assert sorted(entry["outputs"], key=int) == [str(i) for i in range(len(outputs))], f"{node_id}: outputs"
        for i, tooltip in enumerate(info.get("output_tooltips") or []):
            assert CJK.search(entry["outputs"][str(i)]["name"]), f"{node_id} output {i}"
            if tooltip:
                assert CJK.search(entry["outputs"][str(i)]["tooltip"]), f"{node_id} output {i} tooltip"


def test_en_and_zh_have_the_same_ui_strings_settings_and_commands():
    for name in ("main.json", "settings.json", "commands.json"):
        en, zh = load("en", name), load("zh", name)
        assert leaf_keys(en) == leaf_keys(zh), name
        for key in leaf_keys(zh):
            value = zh
            for part in key.split("."):
                value = value[part]
            assert isinstance(value, str) and value.strip(), key
    settings_js = (WEB_JS / "rh" / "settings.js").read_text() + (WEB_JS / "rh" / "checks.js").read_text()
    ids = set(re.findall(r'"(RunningHub\.[A-Za-z.]+)"', settings_js))
    assert ids == {"RunningHub.Accounts.Profiles", "RunningHub.Overrides.CheckOnChange"}
    assert set(load("en", "settings.json")) == {i.replace(".", "_") for i in ids}
    command_ids = set(re.findall(r'_COMMAND = "(RunningHub\.[A-Za-z.]+)"', (WEB_JS / "rh" / "group.js").read_text()))
    assert command_ids == {"RunningHub.Group.ToggleRemote"}
    assert set(load("en", "commands.json")) == {i.replace(".", "_") for i in command_ids}
    categories = set(re.findall(r'category: \["([^"]+)", "([^"]+)"', settings_js))
    used = {c for pair in categories for c in pair}
    assert used <= set(load("en", "main.json")["settingsCategories"])


def test_every_string_key_the_front_end_uses_exists():
    source = "\n".join(p.read_text() for p in WEB_JS.rglob("*.js"))
    used = set(re.findall(r'\bt\(\s*"([A-Za-z_.]+)"', source))
    used |= {f"status.{s}" for s in ("SUBMITTING", "SUBMITTED", "REATTACHED", "QUEUED", "RUNNING", "SUCCESS",
                                          "FAILED", "CANCEL", "WAITING")}
    used |= {f"picker.columns.{c}" for c in ("node", "classType", "title", "field", "value", "valueType")}
    assert len(used) > 60
    for lang in ("en", "zh"):
        have = leaf_keys(load(lang, "main.json")["runninghub"])
        assert sorted(used - have) == [], lang
        assert sorted(have - used) == [], f"{lang}: strings no code uses"


def test_node_docs_are_served_where_the_front_end_looks(comfy_with_pack, pack_nodes):
    for node_id, info in pack_nodes.items():
        en = (DOCS / node_id / "en.md").read_text(encoding="utf-8")
        zh = (DOCS / node_id / "zh.md").read_text(encoding="utf-8")
        assert (DOCS / f"{node_id}.md").read_text(encoding="utf-8") == en, f"{node_id}.md is the English fallback"
        assert en.startswith(f"# {info['display_name']}\n"), node_id
        assert zh.startswith("# ") and CJK.search(zh.splitlines()[0]), node_id
        for name in list(inputs_of(info)) + list(info["output_name"]):
            assert f"`{name}`" in en and f"`{name}`" in zh, f"{node_id} docs do not mention {name}"
        for rel in (f"{node_id}/en.md", f"{node_id}/zh.md", f"{node_id}.md"):
            resp = comfy_with_pack.get(f"/extensions/{PACK_DIR_NAME}/docs/{rel}")
            assert resp.status_code == 200, rel
            assert resp.content == (DOCS / rel).read_bytes()


def test_comfyui_serves_the_pack_locales(comfy_with_pack):
    served = comfy_with_pack.get("/i18n").json()
    assert served["zh"]["nodeDefs"]["RHRunWorkflow"] == load("zh", "nodeDefs.json")["RHRunWorkflow"]
    assert served["zh"]["settings"]["RunningHub_Accounts_Profiles"]["name"] == "密钥配置"
    assert served["en"]["runninghub"] == load("en", "main.json")["runninghub"]
    assert served["zh"]["settingsCategories"]["Accounts"] == "API 密钥与站点"
    assert served["zh"]["commands"]["RunningHub_Group_ToggleRemote"]["label"] == "在 RunningHub 上运行所选分组（开/关）"
