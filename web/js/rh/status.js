// Live status on RH Run Workflow: remote state, elapsed time (ticking between the server's
// `runninghub.status` events), queue position and cost while it runs, the task id at the end.
import { api } from "../../../../scripts/api.js";
import { app } from "../../../../scripts/app.js";
import { h } from "./dom.js";
import { RUN, nodeForExecutionId } from "./graph.js";
import { t } from "./i18n.js";

export const STATUS_EVENT = "runninghub.status";
const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCEL"]);
const PREVIEW_WIDGET = "$$node-text-preview";

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  return s < 60 ? t("status.seconds", { n: s }) : t("status.minutes", { m: Math.floor(s / 60), s: s % 60 });
}

export function attachStatusWidget(node) {
  const line = h("div", { class: "rh-line rh-status-line" });
  const detail = h("div", { class: "rh-line rh-status-detail" });
  const taskId = h("span", { class: "rh-task" });
  const copy = h("button", { class: "rh-btn rh-btn-small rh-copy", type: "button", hidden: true }, t("status.copy"));
  const taskLine = h("div", { class: "rh-line rh-status-task" }, taskId, " ", copy);
  const box = h("div", { class: "rh-widget rh-status" }, line, detail, taskLine);
  copy.addEventListener("click", async () => {
    const id = node.rhStatus?.data?.task_id;
    if (!id) return;
    try {
      await navigator.clipboard.writeText(String(id));
      app.extensionManager?.toast?.add({ severity: "info", summary: "RunningHub", detail: t("status.copied"), life: 1500 });
    } catch {
      /* clipboard refused: the id stays selectable */
    }
  });
  const widget = node.addDOMWidget("rh_status", "rh-status", box, {
    serialize: false, hideOnZoom: true, getValue: () => "", setValue: () => {}, margin: 4,
    getMinHeight: () => 58, getMaxHeight: () => 58,
  });
  widget.serialize = false;
  node.rhStatus = { box, line, detail, taskId, copy, data: null, receivedAt: 0, error: null };
  const onAdded = node.onAdded;
  node.onAdded = function (...args) {
    onAdded?.apply(this, args);
    render(this);  // the node has its id now
  };
  render(node);
  return widget;
}

function render(node) {
  const s = node.rhStatus;
  if (!s) return;
  const d = s.data;
  s.box.dataset.state = d?.state ?? "idle";
  s.box.dataset.node = String(node.id);
  if (!d) {
    s.line.replaceChildren(t("status.idle"));
    s.detail.textContent = "";
    s.taskId.textContent = "";
    s.copy.hidden = true;
    return;
  }
  const live = !TERMINAL.has(d.state) && !s.frozen;
  const since = live ? (performance.now() - s.receivedAt) / 1000 : 0;
  const elapsed = (d.elapsed ?? 0) + (d.elapsed != null ? since : 0);
  const stateText = t(`status.${d.state}`);
  const state = h("span", { class: `rh-state rh-state-${d.state}` }, stateText);
  s.line.replaceChildren(...t("status.line", { state: "\u0000", elapsed: duration(elapsed) })
    .split("\u0000").flatMap((part, i) => (i ? [state, part] : [part])));
  const details = [];
  if (d.queue_position != null) details.push(t("status.queuePosition", { position: d.queue_position }));
  const phase = d.phase_elapsed != null ? d.phase_elapsed + since : null;
  if (live && phase != null && (d.state === "QUEUED" || d.state === "RUNNING") && elapsed - phase >= 1) {
    details.push(t("status.phase", { state: stateText, phase: duration(phase) }));  // after a queued phase
  }
  if (d.cost) details.push(t("status.cost", { cost: d.cost }));
  if (s.error) details.push(s.error);
  s.detail.textContent = details.join(" · ");
  s.detail.className = `rh-line rh-status-detail ${s.error ? "rh-bad" : ""}`;
  s.detail.title = s.detail.textContent;
  s.taskId.textContent = d.task_id ? t("status.task", { id: d.task_id }) : "";
  s.copy.hidden = !(d.task_id && TERMINAL.has(d.state));
}

function update(node, data) {
  const s = node.rhStatus;
  if (!s) return;
  const previous = s.data ?? {};
  if (data.state === "SUBMITTING") {
    s.error = null;
    s.frozen = false;
    s.data = { elapsed: 0, ...data };
  } else {
    s.data = { ...previous, ...data };
  }
  if (data.elapsed == null && previous.elapsed != null && !TERMINAL.has(data.state)) {
    s.data.elapsed = previous.elapsed + (performance.now() - s.receivedAt) / 1000;
  }
  s.receivedAt = performance.now();
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
 * shows the same events, structured. (Same steps as the front end's own removal.) */
function dropTextPreview(node) {
  const index = node.widgets?.findIndex((w) => w.name === PREVIEW_WIDGET) ?? -1;
  if (index < 0) return;
  node.widgets[index].onRemove?.();
  node.widgets.splice(index, 1);
  node.setDirtyCanvas?.(true, true);
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
    update(node, { state: node.rhStatus.data?.state === "CANCEL" ? "CANCEL" : "FAILED" });
  });
  const freeze = () => {
    for (const node of runNodes()) {
      const s = node.rhStatus;
      if (s.data && !TERMINAL.has(s.data.state) && !s.frozen) {
        s.data.elapsed = (s.data.elapsed ?? 0) + (performance.now() - s.receivedAt) / 1000;
        s.frozen = true;
        render(node);
      }
    }
  };
  api.addEventListener("execution_interrupted", freeze);
  api.addEventListener("execution_success", freeze);
  setInterval(() => {
    for (const node of runNodes()) {
      const d = node.rhStatus.data;
      if (d && !TERMINAL.has(d.state) && !node.rhStatus.frozen) render(node);
    }
  }, 1000);
}

/** RH Run Workflow's own output (`ui.text`): the final summary, also for cached results. */
export function onRunExecuted(node, output) {
  const summary = output?.text?.[0];
  if (!summary || !node.rhStatus) return;
  if (!node.rhStatus.data) {
    const match = /task (\d+)/.exec(summary);
    update(node, { state: "SUCCESS", task_id: match?.[1], text: summary });
  }
}
