// The task panel: a "RunningHub" sidebar tab listing the task ledger (host/task_panel.py):
// workflow, status, elapsed time, cost, task id and the prompt that started each task, with
// Cancel for tasks on their way, Load outputs for finished ones (adds an RH Fetch Outputs
// node with the task id) and Clear for finished or "may exist" entries.
// Live without polling: the server pushes a `runninghub.tasks` event on every ledger change;
// the panel reloads the list once per burst of events, and at most once a minute otherwise.
import { api } from "../../../../scripts/api.js";
import { app } from "../../../../scripts/app.js";
import { h } from "./dom.js";
import { FETCH, markChanged, setWidget } from "./graph.js";
import { t } from "./i18n.js";
import { routes } from "./routes.js";

export const TASKS_EVENT = "runninghub.tasks";
export const TAB_ID = "runninghub-tasks";
const WAITING = new Set(["QUEUED", "RUNNING", "CREATE"]);
const SLOW_REFRESH_MS = 60000;
const BURST_MS = 250;

let mounted = null; // the open panel: {list, message, rows, loadedAt, timers, listener}

function statusLabel(status) {
  const labels = {
    SUBMITTING: t("tasks.submitting"),
    MAY_EXIST: t("tasks.mayExist"),
    CREATE: t("status.QUEUED"),
    QUEUED: t("status.QUEUED"),
    RUNNING: t("status.RUNNING"),
    SUCCESS: t("status.SUCCESS"),
    FAILED: t("status.FAILED"),
    CANCEL: t("status.CANCEL"),
  };
  return labels[status] ?? String(status).toLowerCase();
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  return s < 60 ? t("status.seconds", { n: s }) : t("status.minutes", { m: Math.floor(s / 60), s: s % 60 });
}

function elapsedOf(row, loadedAt) {
  const live = WAITING.has(row.status) || row.status === "SUBMITTING";
  return row.elapsed + (live ? (performance.now() - loadedAt) / 1000 : 0);
}

function toast(detail, severity = "info") {
  app.extensionManager?.toast?.add({ severity, summary: "RunningHub", detail, life: 3000 });
}

/** Adds an RH Fetch Outputs node for a finished task, in view and selected: queueing loads its outputs. */
export function addFetchNode(row) {
  const node = globalThis.LiteGraph?.createNode(FETCH);
  if (!node) return null;
  const ds = app.canvas?.ds;
  const el = app.canvas?.canvas;
  if (ds && el) {  // the middle of what the canvas shows (sidebars may cover its left part)
    const [x, y] = [el.clientWidth * 0.6, el.clientHeight * 0.4];
    node.pos = [x / ds.scale - ds.offset[0], y / ds.scale - ds.offset[1]];
  }
  app.graph.add(node);
  setWidget(node, "task_id", row.task_id);
  setWidget(node, "account", row.account);
  app.canvas?.selectNode?.(node);
  markChanged(node);
  return node;
}

async function act(button, work, done) {
  button.disabled = true;
  try {
    await work();
    if (done) toast(done);
  } catch (err) {
    showMessage(t("common.failedRequest", { error: err.message }), true);
    button.disabled = false;
  }
}

function actions(row) {
  const out = [];
  if (WAITING.has(row.status) && row.task_id) {
    const cancel = h("button", { class: "rh-btn rh-btn-danger rh-task-cancel", type: "button" }, t("tasks.cancel"));
    cancel.addEventListener("click", () => act(cancel, () => routes.cancelTask(row.entry),
                                               t("tasks.cancelled", { id: row.task_id })));
    out.push(cancel);
  }
  // A group's native prompt has no task outputs for RH Fetch Outputs: queueing the group again reuses it.
  if (row.status === "SUCCESS" && row.task_id && row.kind !== "native") {
    const load = h("button", { class: "rh-btn rh-btn-primary rh-task-load", type: "button" }, t("tasks.load"));
    load.addEventListener("click", () => {
      if (addFetchNode(row)) toast(t("tasks.loaded", { id: row.task_id }));
    });
    out.push(load);
  }
  if (!WAITING.has(row.status) && row.status !== "SUBMITTING") {
    const clear = h("button", { class: "rh-btn rh-btn-small rh-task-clear", type: "button" }, t("tasks.clear"));
    clear.addEventListener("click", () => {
      if (row.status === "MAY_EXIST" && !confirm(t("tasks.confirmClear", { entry: row.entry }))) return;
      act(clear, () => routes.clearTask(row.entry));
    });
    out.push(clear);
  }
  return out;
}

function rowElement(row) {
  const elapsed = h("span", { class: "rh-task-elapsed" });
  const el = h("div", { class: `rh-task-row rh-task-${row.status.toLowerCase()}`, "data-entry": row.entry,
                        "data-status": row.status, "data-task-id": row.task_id || "" },
    h("div", { class: "rh-task-head" },
      h("span", { class: "rh-task-workflow" }, t("tasks.workflow", { kind: row.kind, id: row.workflow_id })),
      h("span", { class: "rh-chip rh-task-status" }, statusLabel(row.status))),
    h("div", { class: "rh-muted rh-task-meta" },
      elapsed,
      row.cost ? ` · ${t("status.cost", { cost: row.cost })}` : "",
      row.task_id ? ` · ${t("status.task", { id: row.task_id })}` : "",
      row.prompt_id ? ` · ${t("tasks.prompt", { id: String(row.prompt_id).slice(0, 8) })}` : ""),
    row.message ? h("div", { class: "rh-muted rh-task-message" }, row.message) : "",
    h("div", { class: "rh-task-actions" }, ...actions(row)));
  el.rhElapsed = () => { elapsed.textContent = duration(elapsedOf(row, mounted?.loadedAt ?? 0)); };
  el.rhElapsed();
  return el;
}

function showMessage(text, bad = false) {
  if (!mounted) return;
  mounted.message.textContent = text || "";
  mounted.message.className = `rh-message ${bad ? "rh-bad" : ""}`;
}

async function load() {
  const panel = mounted;
  if (!panel) return;
  let data;
  try {
    data = await routes.tasks();
  } catch (err) {
    showMessage(t("common.failedRequest", { error: err.message }), true);
    return;
  }
  if (panel !== mounted) return;
  panel.loadedAt = performance.now();
  const rows = data.tasks ?? [];
  panel.list.replaceChildren(...(rows.length ? rows.map(rowElement) : [h("p", { class: "rh-muted" }, t("tasks.empty"))]));
  showMessage("");
}

function scheduleLoad() {
  if (!mounted || mounted.pending) return;
  mounted.pending = setTimeout(() => {
    if (!mounted) return;
    mounted.pending = null;
    load();
  }, BURST_MS);
}

function mount(el) {
  unmount();
  const list = h("div", { class: "rh-task-list" });
  const message = h("div", { class: "rh-message" });
  const refresh = h("button", { class: "rh-btn rh-btn-small", type: "button", onclick: () => load() }, t("tasks.refresh"));
  el.replaceChildren(h("div", { class: "rh-tasks" },
    h("header", { class: "rh-task-head" }, h("h3", {}, t("tasks.title")), refresh),
    h("p", { class: "rh-muted" }, t("tasks.intro")), message, list));
  const listener = () => scheduleLoad();
  api.addEventListener(TASKS_EVENT, listener);
  mounted = { list, message, loadedAt: performance.now(), listener, pending: null,
              slow: setInterval(() => load(), SLOW_REFRESH_MS),
              tick: setInterval(() => list.querySelectorAll(".rh-task-row").forEach((r) => r.rhElapsed?.()), 1000) };
  load();
}

function unmount() {
  if (!mounted) return;
  api.removeEventListener(TASKS_EVENT, mounted.listener);
  clearInterval(mounted.slow);
  clearInterval(mounted.tick);
  clearTimeout(mounted.pending);
  mounted = null;
}

/** Without a sidebar (older front ends), the panel opens as a dialog from a small button. */
function openAsDialog() {
  const body = h("div", { class: "rh-task-dialog-body" });
  const close = h("button", { class: "rh-btn", type: "button" }, t("common.close"));
  const overlay = h("div", { class: "rh-overlay" }, h("div", { class: "rh-dialog" }, body, close));
  close.addEventListener("click", () => { unmount(); overlay.remove(); });
  document.body.append(overlay);
  mount(body);
}

export function registerTaskPanel() {
  const manager = app.extensionManager;
  if (typeof manager?.registerSidebarTab === "function") {
    manager.registerSidebarTab({
      id: TAB_ID, icon: "pi pi-cloud", title: t("tasks.title"), tooltip: t("tasks.tooltip"), label: "RunningHub",
      type: "custom", render: (el) => mount(el), destroy: () => unmount(),
    });
    return "sidebar";
  }
  const button = h("button", { class: "rh-btn rh-task-fallback", type: "button", onclick: openAsDialog },
                   t("tasks.title"));
  Object.assign(button.style, { position: "fixed", left: "0.5rem", bottom: "0.5rem", zIndex: 1000 });
  document.body.append(button);
  return "button";
}
