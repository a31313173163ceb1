// Live status on RH Run Workflow: remote state, elapsed time (ticking between the server's
// `runninghub.status` events), the remote node and its steps as a progress bar (from the
// task's websocket), waiting and warnings while it runs, cost and task id at the end.
// Every event is the typed status of remote/status.py: nothing is parsed from text.
// A Run node fed a list runs once per item (a sweep): events then carry `index` and `runs`,
// and the widget sums the runs up.
import { api } from "../../../../scripts/api.js";
import { app } from "../../../../scripts/app.js";
import { h } from "./dom.js";
import { RUN, nodeForExecutionId } from "./graph.js";
import { t } from "./i18n.js";

export const STATUS_EVENT = "runninghub.status";
export const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCEL"]);
const ORDER = ["FAILED", "CANCEL", "RUNNING", "QUEUED", "SUBMITTED", "REATTACHED", "SUBMITTING", "WAITING", "SUCCESS"];
const PREVIEW_WIDGET = "$$node-text-preview";

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  return s < 60 ? t("status.seconds", { n: s }) : t("status.minutes", { m: Math.floor(s / 60), s: s % 60 });
}

export function stateLabel(state) {
  const text = t(`status.${state}`);
  return text === `status.${state}` ? String(state).toLowerCase() : text;
}

function isLive(run) {
  return !TERMINAL.has(run.data.state) && !run.frozen;
}

/** Seconds since the run was queued, as of now (ticking while it is live). */
function elapsedOf(run) {
  const since = isLive(run) ? (performance.now() - run.receivedAt) / 1000 : 0;
  return { elapsed: (run.data.elapsed ?? 0) + since, phase: run.data.phase_elapsed != null ? run.data.phase_elapsed + since : null };
}

export function attachStatusWidget(node) {
  const line = h("div", { class: "rh-line rh-status-line" });
  const detail = h("div", { class: "rh-line rh-status-detail" });
  const taskId = h("span", { class: "rh-task" });
  const copy = h("button", { class: "rh-btn rh-btn-small rh-copy", type: "button", hidden: true }, t("status.copy"));
  const taskLine = h("div", { class: "rh-line rh-status-task" }, taskId, " ", copy);
  const fill = h("div", { class: "rh-bar-fill" });
  const bar = h("div", { class: "rh-bar", role: "progressbar", "aria-valuemin": "0", hidden: true }, fill);
  const box = h("div", { class: "rh-widget rh-status" }, line, detail, bar, taskLine);
  copy.addEventListener("click", async () => {
    const ids = [...(node.rhStatus?.runs.values() ?? [])].map((r) => r.data.task_id).filter(Boolean);
    if (!ids.length) return;
    try {
      await navigator.clipboard.writeText(ids.join("\n"));
      app.extensionManager?.toast?.add({ severity: "info", summary: "RunningHub", detail: t("status.copied"), life: 1500 });
    } catch {
      /* clipboard refused: the id stays selectable */
    }
  });
  const widget = node.addDOMWidget("rh_status", "rh-status", box, {
    serialize: false, hideOnZoom: true, getValue: () => "", setValue: () => {}, margin: 4,
    getMinHeight: () => 64, getMaxHeight: () => 64,
  });
  widget.serialize = false;
  node.rhStatus = { box, line, detail, taskId, copy, bar, fill, runs: new Map(), total: 0, error: null, warning: null };
  const onAdded = node.onAdded;
  node.onAdded = function (...args) {
    onAdded?.apply(this, args);
    render(this);  // the node has its id now
  };
  render(node);
  return widget;
}

function stateSpan(state) {
  return h("span", { class: `rh-state rh-state-${state}` }, stateLabel(state));
}

/** `text` (made with state "\u0000") with the coloured state put in place of the marker. */
function withState(text, span) {
  return text.split("\u0000").flatMap((part, i) => (i ? [span, part] : [part]));
}

/** `KSampler #3 · 12/20 · nodes 2/5`: the remote node of a running run, from its socket. */
export function remoteText(remote) {
  if (!remote) return "";
  const parts = [];
  if (remote.node_id != null) parts.push(`${remote.node_class ?? t("status.node")} #${remote.node_id}`);
  if (remote.value != null && remote.max) parts.push(`${remote.value}/${remote.max}`);
  if (remote.nodes_total) parts.push(t("status.nodes", { done: Math.min(remote.nodes_done, remote.nodes_total), total: remote.nodes_total }));
  return parts.join(" · ");
}

/** 0..1 of the remote node's steps in a status event (0 without steps). */
function stepFraction(data) {
  const r = data.remote;
  return r && r.value != null && r.max ? Math.min(1, r.value / r.max) : 0;
}

/** 0..1 of one run: the furthest its remote steps got (the bar never goes back). */
function fractionOf(run) {
  return TERMINAL.has(run.data.state) ? 1 : run.best;
}

/** The bar: shown while a live run has reported steps; the runs' mean fraction. */
function renderBar(s, runs) {
  const stepping = runs.some((run) => isLive(run) && run.best > 0);
  s.bar.hidden = !stepping;
  if (!stepping) return;
  const value = runs.reduce((sum, run) => sum + fractionOf(run), 0) / runs.length;
  s.fill.style.width = `${Math.round(value * 100)}%`;
  s.bar.setAttribute("aria-valuenow", String(Math.round(value * 100)));
  s.bar.setAttribute("aria-valuemax", "100");
}

function render(node) {
  const s = node.rhStatus;
  if (!s) return;
  s.box.dataset.node = String(node.id);
  const runs = [...s.runs.entries()].sort((a, b) => a[0] - b[0]).map(([, run]) => run);
  if (!runs.length) {
    s.box.dataset.state = "idle";
    s.line.replaceChildren(t("status.idle"));
    s.detail.textContent = "";
    s.taskId.textContent = "";
    s.copy.hidden = true;
    s.bar.hidden = true;
    return;
  }
  const details = [];
  let state;
  if (runs.length === 1 && s.total <= 1) {
    const run = runs[0];
    const d = run.data;
    state = d.state;
    const { elapsed, phase } = elapsedOf(run);
    s.line.replaceChildren(...withState(t("status.line", { state: "\u0000", elapsed: duration(elapsed) }), stateSpan(state)));
    if (isLive(run) && d.remote) details.push(remoteText(d.remote));
    if (isLive(run) && phase != null && (state === "QUEUED" || state === "RUNNING") && elapsed - phase >= 1) {
      details.push(t("status.phase", { state: stateLabel(state), phase: duration(phase) }));  // after a queued phase
    }
    if (state === "WAITING" && d.line) details.push(d.line);
    if (d.cost) details.push(t("status.cost", { cost: d.cost }));
    s.taskId.textContent = d.task_id ? t("status.task", { id: d.task_id }) : "";
  } else {
    const counts = new Map();
    for (const run of runs) counts.set(run.data.state, (counts.get(run.data.state) ?? 0) + 1);
    state = ORDER.find((st) => counts.has(st)) ?? runs[0].data.state;
    const summary = [...counts.entries()].sort((a, b) => ORDER.indexOf(a[0]) - ORDER.indexOf(b[0]))
      .map(([st, n]) => t("status.count", { n, state: stateLabel(st) })).join(" · ");
    const longest = Math.max(...runs.map((run) => elapsedOf(run).elapsed));
    s.line.replaceChildren(t("status.sweep", { runs: Math.max(s.total, runs.length), summary, elapsed: duration(longest) }));
    const remotes = runs.map((run, i) => (isLive(run) && run.data.remote ? `#${i + 1} ${remoteText(run.data.remote)}` : ""));
    details.push(...remotes.filter(Boolean));
    const costs = runs.map((run) => run.data.cost).filter(Boolean);
    if (costs.length) details.push(t("status.costs", { costs: costs.join("; ") }));
    const ids = runs.map((run) => run.data.task_id).filter(Boolean);
    s.taskId.textContent = ids.length ? t("status.tasks", { ids: ids.join(", ") }) : "";
  }
  renderBar(s, runs);
  if (s.warning) details.push(`⚠ ${s.warning}`);
  if (s.error) details.push(s.error);
  s.box.dataset.state = state;
  s.detail.textContent = details.join(" · ");
  s.detail.className = `rh-line rh-status-detail ${s.error ? "rh-bad" : ""}`;
  s.detail.title = s.detail.textContent;
  s.taskId.title = s.taskId.textContent;
  s.copy.hidden = !(s.taskId.textContent && runs.every((run) => !isLive(run)));
}

function update(node, data) {
  const s = node.rhStatus;
  if (!s) return;
  if (data.state === "WARNING") {
    s.warning = data.warning ?? data.line ?? null;
    render(node);
    return;
  }
  const index = Number.isInteger(data.index) ? data.index : 0;
  if (data.state === "SUBMITTING" && [...s.runs.values()].every((run) => !isLive(run))) {
    s.runs.clear();  // a new prompt
    s.error = null;
    s.warning = null;
  }
  const now = performance.now();
  const previous = s.runs.get(index);
  const merged = data.state === "SUBMITTING" ? { ...data, elapsed: data.elapsed ?? 0 } : { ...(previous?.data ?? {}), ...data };
  if (data.elapsed == null && previous && previous.data.elapsed != null && isLive(previous)) {
    merged.elapsed = previous.data.elapsed + (now - previous.receivedAt) / 1000;
  }
  const best = Math.max(data.state === "SUBMITTING" ? 0 : previous?.best ?? 0, stepFraction(merged));
  s.runs.set(index, { data: merged, receivedAt: now, frozen: false, best });
  if (Number.isInteger(data.runs)) s.total = data.runs;
  render(node);
}

function runNodes() {
  const nodes = [];
  const visit = (graph, seen = new Set()) => {
    if (!graph || seen.has(graph)) return;
    seen.add(graph);
    for (const node of graph.nodes ?? []) {
      if (node.comfyClass === RUN && node.rhStatus) nodes.push(node);
      if (node.subgraph) visit(node.subgraph, seen);
    }
  };
  visit(app.graph);
  return nodes;
}

/** Removes ComfyUI's generic progress-text preview from our Run nodes: the status widget
 * shows the same events, structured. LiteGraph's removeWidget (1.32.9 on) keeps the front
 * end's own widget records in step. */
function dropTextPreview(node) {
  const preview = node.widgets?.find((w) => w.name === PREVIEW_WIDGET);
  if (!preview) return;
  node.removeWidget(preview);
  node.setDirtyCanvas?.(true, true);
}

/** Stops the clocks of runs that are still live when the prompt ends. */
function freeze(node) {
  for (const run of node.rhStatus.runs.values()) {
    if (isLive(run)) {
      run.data.elapsed = elapsedOf(run).elapsed;
      run.frozen = true;
    }
  }
  render(node);
}

export function setupStatus() {
  api.addEventListener(STATUS_EVENT, ({ detail }) => {
    if (!detail?.node) return;
    const node = nodeForExecutionId(detail.node);
    if (node?.rhStatus) update(node, detail);
  });
  api.addEventListener("progress_text", ({ detail }) => {
    const node = detail?.nodeId ? nodeForExecutionId(detail.nodeId) : null;
    if (node?.comfyClass === RUN && node.rhStatus) queueMicrotask(() => dropTextPreview(node));
  });
  api.addEventListener("execution_error", ({ detail }) => {
    const node = detail?.node_id ? nodeForExecutionId(detail.node_id) : null;
    if (!node?.rhStatus) return;
    node.rhStatus.error = String(detail.exception_message ?? "").split("\n")[0];
    freeze(node);
  });
  const freezeAll = () => runNodes().forEach(freeze);
  api.addEventListener("execution_interrupted", freezeAll);
  api.addEventListener("execution_success", freezeAll);
  setInterval(() => {
    for (const node of runNodes()) {
      if ([...node.rhStatus.runs.values()].some(isLive)) render(node);
    }
  }, 1000);
}

/** RH Run Workflow's own output (`ui.rh_status`: the final typed status), also for cached results. */
export function onRunExecuted(node, output) {
  const status = output?.rh_status?.[0];
  if (!status || !node.rhStatus || node.rhStatus.runs.size) return;
  update(node, { ...status, index: 0 });
}
