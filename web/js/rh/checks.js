// Flags wrong RH Node Override entries before queueing: on graph changes (debounced), each
// override's node id and field are checked against the remote workflow through the pack's
// check route (the same rule the Run node applies server-side before anything is billed).
import { app } from "../../../../scripts/app.js";
import { h } from "./dom.js";
import { OVERRIDE, allNodes, overrideContext, overrideEntry } from "./graph.js";
import { t } from "./i18n.js";
import { routes } from "./routes.js";

export const CHECK_SETTING = "RunningHub.Overrides.CheckOnChange";
const DEBOUNCE_MS = 700;
const REPEAT_AFTER_MS = 60_000; // the same request is not sent again within this time

let timer = null;
let generation = 0;
const recent = new Map(); // request JSON -> {at, promise}

function enabled() {
  try {
    return app.extensionManager?.setting?.get(CHECK_SETTING) !== false;
  } catch {
    return true;
  }
}

/** A small text area under the node's widgets that shows the entry's check result. */
export function attachCheckWidget(node) {
  const text = h("div", { class: "rh-line rh-wrap rh-check-text" });
  const box = h("div", { class: "rh-widget rh-check" }, text);
  const widget = node.addDOMWidget("rh_check", "rh-check", box, {
    serialize: false, hideOnZoom: true, getValue: () => "", setValue: () => {}, margin: 4,
    getMinHeight: () => 40, getMaxHeight: () => 40,
  });
  widget.serialize = false;
  node.rhCheck = { box, text, state: "none" };
  const onAdded = node.onAdded;
  node.onAdded = function (...args) {
    onAdded?.apply(this, args);
    box.dataset.node = String(this.id);  // the node has its id now
  };
  setFlag(node, "none", t("check.empty"));

  const drawForeground = node.onDrawForeground;
  node.onDrawForeground = function (ctx, ...rest) {
    drawForeground?.call(this, ctx, ...rest);
    if (this.rhCheck?.state !== "bad" || this.flags?.collapsed) return;
    const titleHeight = globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
    ctx.save();
    ctx.strokeStyle = "#ff4d4f";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.roundRect?.(-3, -titleHeight - 3, this.size[0] + 6, this.size[1] + titleHeight + 6, 8);
    ctx.stroke();
    ctx.restore();
  };
  return widget;
}

/** state: "none" | "checking" | "ok" | "bad" | "unchecked" */
export function setFlag(node, state, message) {
  const check = node.rhCheck;
  if (!check) return;
  check.state = state;
  check.message = message;
  check.box.dataset.state = state;
  check.box.dataset.node = String(node.id);
  check.text.textContent = message;
  check.text.title = message;
  check.text.className = `rh-line rh-wrap rh-check-text ${state === "ok" ? "rh-ok" : state === "bad" ? "rh-bad" : ""}`;
  node.setDirtyCanvas?.(true, true);
}

export function scheduleCheck(delay = DEBOUNCE_MS) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    runChecks().catch((err) => console.warn("RunningHub: override check failed", err));
  }, delay);
}

function request(workflowId, profile, entries) {
  const key = JSON.stringify([workflowId, profile, entries]);
  const now = Date.now();
  const hit = recent.get(key);
  if (hit && now - hit.at < REPEAT_AFTER_MS) return hit.promise;
  const promise = routes.check(workflowId, profile, entries);
  recent.set(key, { at: now, promise });
  promise.catch(() => recent.delete(key)); // errors are retried on the next change
  for (const [k, v] of recent) if (now - v.at >= REPEAT_AFTER_MS) recent.delete(k);
  return promise;
}

/** Checks every RH Node Override of the open workflow now; resolves when all are flagged. */
export async function runChecks() {
  const mine = ++generation;
  const nodes = allNodes().filter((n) => n.comfyClass === OVERRIDE && n.rhCheck);
  if (!enabled()) {
    for (const node of nodes) setFlag(node, "none", "");
    return;
  }
  const groups = new Map();
  for (const node of nodes) {
    const entry = overrideEntry(node);
    if (!entry.nodeId && !entry.fieldName) {
      setFlag(node, "none", t("check.empty"));
      continue;
    }
    const context = overrideContext(node);
    if (context.kind === "ai-app") {
      setFlag(node, "unchecked", t("check.aiApp"));
      continue;
    }
    if (!context.workflowId) {
      setFlag(node, "unchecked", t("check.notConnected"));
      continue;
    }
    const key = `${context.workflowId}\n${context.profile}`;
    if (!groups.has(key)) groups.set(key, { workflowId: context.workflowId, profile: context.profile, items: [] });
    groups.get(key).items.push({ node, entry });
  }
  await Promise.all([...groups.values()].map(async (group) => {
    for (const { node } of group.items) {
      if (node.rhCheck.state !== "ok" && node.rhCheck.state !== "bad") {
        setFlag(node, "checking", t("check.checking", { id: group.workflowId }));
      }
    }
    let reply;
    try {
      reply = await request(group.workflowId, group.profile, group.items.map((i) => i.entry));
    } catch (err) {
      if (mine !== generation) return;
      for (const { node } of group.items) setFlag(node, "unchecked", t("check.unchecked", { reason: err.message }));
      return;
    }
    if (mine !== generation) return;
    group.items.forEach(({ node }, index) => {
      const result = reply.entries?.[index];
      if (!result) return;
      if (result.ok) {
        setFlag(node, "ok", t("check.ok", {
          node: result.nodeId, title: result.title ?? result.classType ?? "?", field: result.fieldName,
          type: result.valueType ?? "?",
        }));
      } else {
        setFlag(node, "bad", t("check.bad", { reason: result.reason }));
      }
    });
  }));
}
