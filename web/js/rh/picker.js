// The field picker of RH Node Override: lists the remote workflow's nodes and fields (from
// getJsonApiFormat, through the pack's route, with the key the server holds) and fills
// node_id and field_name with the one chosen.
import { app } from "../../../../scripts/app.js";
import { h } from "./dom.js";
import { findWidget, isWired, markChanged, overrideContext, setWidget } from "./graph.js";
import { t } from "./i18n.js";
import { routes } from "./routes.js";

let openDialog = null;

function showValue(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function closePicker() {
  openDialog?.close();
}

/** Opens the picker for an RH Node Override node. Resolves with the chosen row or null. */
export function openPicker(node, { onPicked } = {}) {
  closePicker();
  const context = overrideContext(node);
  const current = {
    nodeId: String(findWidget(node, "node_id")?.value ?? "").trim(),
    fieldName: String(findWidget(node, "field_name")?.value ?? "").trim(),
  };

  const wfInput = h("input", {
    class: "rh-input rh-wf", value: context.workflowId, placeholder: t("picker.workflowIdPlaceholder"),
    spellcheck: false, autocomplete: "off", size: 22,
  });
  const profileInput = h("input", {
    class: "rh-input rh-profile-input", value: context.profile, spellcheck: false, autocomplete: "off", size: 10,
  });
  const loadBtn = h("button", { class: "rh-btn rh-btn-primary rh-load", type: "button" }, t("picker.load"));
  const reloadBtn = h("button", { class: "rh-btn rh-reload", type: "button" }, t("picker.reload"));
  const search = h("input", {
    class: "rh-input rh-search", placeholder: t("picker.search"), spellcheck: false, autocomplete: "off",
  });
  const message = h("div", { class: "rh-muted rh-picker-message" });
  const tbody = h("tbody");
  const cols = ["node", "classType", "title", "field", "value", "valueType"];
  const table = h("table", { class: "rh-fields" },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, t(`picker.columns.${c}`))))), tbody);
  let source = "";
  if (context.source === "run") {
    source = context.several
      ? t("picker.severalRuns", { count: context.several, node: context.runNode.id })
      : t("picker.fromRun", { node: context.runNode.id });
  } else {
    source = t("picker.typed");
  }
  const closeBtn = h("button", { class: "rh-btn rh-close", type: "button", "aria-label": t("common.close") }, "×");
  const dialog = h("div", { class: "rh-dialog", role: "dialog", "aria-modal": "true" },
    h("header", {}, h("h3", {}, t("picker.title")), closeBtn),
    h("div", { class: "rh-row" },
      h("label", {}, t("picker.workflowId"), wfInput),
      h("label", {}, t("picker.profile"), profileInput),
      loadBtn, reloadBtn),
    h("div", { class: "rh-muted rh-source" }, source),
    search, message, h("div", { class: "rh-table-wrap" }, table));
  const overlay = h("div", { class: "rh-overlay rh-picker", "data-node": String(node.id) }, dialog);

  let rows = [];
  let meta = null;
  let finished = false;
  let resolveResult;
  const result = new Promise((resolve) => (resolveResult = resolve));

  function close(row = null) {
    if (finished) return;
    finished = true;
    overlay.remove();
    document.removeEventListener("keydown", onKey, true);
    if (openDialog?.overlay === overlay) openDialog = null;
    resolveResult(row);
  }

  function choose(row) {
    setWidget(node, "node_id", row.nodeId);
    setWidget(node, "field_name", row.fieldName);
    const textWidget = findWidget(node, "text_value");
    const simple = ["str", "int", "float", "bool"].includes(row.valueType);
    if (textWidget && simple && !isWired(node, "value") && !String(textWidget.value ?? "").trim()) {
      setWidget(node, "text_value", showValue(row.value));
    }
    if (context.source !== "run") {
      node.properties ??= {};
      node.properties.rh_workflow_id = wfInput.value.trim();
      node.properties.rh_profile = profileInput.value.trim() || "default";
    }
    markChanged(node);
    app.extensionManager?.toast?.add({
      severity: "success", summary: "RunningHub", detail: t("picker.picked", { node: row.nodeId, field: row.fieldName }),
      life: 2500,
    });
    onPicked?.(row);
    close(row);
  }

  function render() {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const shown = rows.filter((row) => {
      const hay = `${row.nodeId} ${row.classType} ${row.title} ${row.fieldName} ${showValue(row.value)} ${row.valueType}`
        .toLowerCase();
      return words.every((w) => hay.includes(w));
    });
    tbody.replaceChildren(...shown.map((row, i) => {
      const first = i === 0 || shown[i - 1].nodeId !== row.nodeId;
      const isCurrent = row.nodeId === current.nodeId && row.fieldName === current.fieldName;
      const tr = h("tr", {
        tabindex: 0, class: [first ? "rh-node-first" : "", isCurrent ? "rh-current" : ""].join(" ").trim(),
        "data-node-id": row.nodeId, "data-field": row.fieldName,
        onclick: () => choose(row),
        onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); choose(row); } },
      },
      h("td", { class: "rh-mono" }, first ? row.nodeId : ""),
      h("td", {}, first ? row.classType ?? "" : ""),
      h("td", {}, first ? row.title ?? "" : ""),
      h("td", { class: "rh-mono" }, row.fieldName),
      h("td", { class: "rh-value", title: showValue(row.value) }, showValue(row.value)),
      h("td", { class: "rh-mono" }, row.valueType));
      return tr;
    }));
    if (meta) {
      const count = t("picker.count", { shown: shown.length, total: rows.length, nodes: meta.nodes, host: meta.host });
      message.className = "rh-muted rh-picker-message";
      message.textContent = shown.length ? count : `${count} — ${t("picker.noMatch")}`;
    }
    return shown;
  }

  async function load(refresh = false) {
    const workflowId = wfInput.value.trim();
    rows = [];
    meta = null;
    render();
    if (!workflowId) {
      message.className = "rh-muted rh-picker-message";
      message.textContent = t("picker.needWorkflowId");
      wfInput.focus();
      return;
    }
    message.className = "rh-muted rh-picker-message";
    message.textContent = t("picker.loading", { id: workflowId });
    loadBtn.disabled = reloadBtn.disabled = true;
    try {
      const data = await routes.fields(workflowId, profileInput.value.trim(), refresh);
      if (finished) return;
      rows = data.fields ?? [];
      meta = data;
      render();
      search.focus();
    } catch (err) {
      if (finished) return;
      message.className = "rh-bad rh-picker-message";
      message.textContent = err.message;
    } finally {
      loadBtn.disabled = reloadBtn.disabled = false;
    }
  }

  function onKey(e) {
    if (e.key === "Escape") {
      e.stopPropagation();
      close(null);
    }
  }

  closeBtn.addEventListener("click", () => close(null));
  overlay.addEventListener("mousedown", (e) => { if (e.target === overlay) close(null); });
  loadBtn.addEventListener("click", () => load(false));
  reloadBtn.addEventListener("click", () => load(true));
  wfInput.addEventListener("keydown", (e) => { if (e.key === "Enter") load(false); });
  profileInput.addEventListener("keydown", (e) => { if (e.key === "Enter") load(false); });
  search.addEventListener("input", render);
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      const shown = render();
      if (shown.length) choose(shown[0]);
    } else if (e.key === "ArrowDown") {
      e.preventDefault();
      tbody.querySelector("tr")?.focus();
    }
  });
  tbody.addEventListener("keydown", (e) => {
    const row = e.target.closest("tr");
    if (!row) return;
    if (e.key === "ArrowDown") { e.preventDefault(); row.nextElementSibling?.focus(); }
    if (e.key === "ArrowUp") { e.preventDefault(); (row.previousElementSibling ?? search).focus(); }
  });
  // Keys typed in the dialog must not reach the canvas (shortcuts, node deletion).
  overlay.addEventListener("keydown", (e) => e.stopPropagation());
  document.addEventListener("keydown", onKey, true);

  document.body.append(overlay);
  openDialog = { overlay, close };
  if (wfInput.value.trim()) load(false);
  else {
    message.textContent = t("picker.needWorkflowId");
    wfInput.focus();
  }
  return result;
}
