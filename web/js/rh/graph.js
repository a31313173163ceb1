// Reading the graph: where an RH Node Override chain leads, and what its entry says.
import { app } from "../../../../scripts/app.js";

export const RUN = "RHRunWorkflow";
export const OVERRIDE = "RHNodeOverride";
export const FETCH = "RHFetchOutputs";
const PASS_THROUGH = new Set([OVERRIDE, "Reroute"]);

export function findWidget(node, name) {
  return node?.widgets?.find((w) => w.name === name);
}

function inputSlot(node, name) {
  return node?.inputs?.findIndex((input) => input.name === name) ?? -1;
}

/** Whether an input slot has a link. LiteGraph's connectivity methods exist in every front
 * end the pack supports (1.32.9 on); reading `input.link` is deprecated from 1.5x on. */
function inputConnected(node, slot) {
  return slot >= 0 && node.isInputConnected(slot);
}

function inputLinkOrigin(node, name) {
  const slot = inputSlot(node, name);
  if (!inputConnected(node, slot)) return null;
  return node.getInputNode?.(slot) ?? null;
}

/** The value of a widget input; when the input is wired from a primitive-like node, that
 * node's own widget value (best effort), or undefined when it cannot be known here. */
export function inputValue(node, name) {
  const origin = inputLinkOrigin(node, name);
  if (origin) {
    const w = findWidget(origin, "value") ?? origin.widgets?.[0];
    return w ? w.value : undefined;
  }
  return findWidget(node, name)?.value;
}

export function isWired(node, name) {
  return inputConnected(node, inputSlot(node, name));
}

/** RH Run Workflow nodes that `node`'s overrides reach, following links downstream through
 * chained RH Node Override nodes (and reroute nodes). */
export function runTargets(node) {
  const found = [];
  const seen = new Set([node]);
  const queue = [node];
  while (queue.length) {
    const current = queue.shift();
    // getOutputNodes (not the deprecated `output.links`): the nodes one output feeds.
    for (let slot = 0; slot < (current.outputs?.length ?? 0); slot++) {
      for (const target of current.getOutputNodes(slot) ?? []) {
        if (seen.has(target)) continue;
        seen.add(target);
        if (target.comfyClass === RUN) found.push(target);
        else if (PASS_THROUGH.has(target.comfyClass ?? target.type)) queue.push(target);
      }
    }
  }
  return found;
}

export function runInfo(runNode) {
  return {
    node: runNode,
    workflowId: String(inputValue(runNode, "workflow_id") ?? "").trim(),
    profile: String(inputValue(runNode, "account") ?? "").trim() || "default",
    kind: String(inputValue(runNode, "kind") ?? "workflow"),
  };
}

/** Where the picker and the check look for the remote workflow of an override node:
 * `{workflowId, profile, kind, source: "run"|"typed"|"none", runNode, targets}`. */
export function overrideContext(node) {
  const targets = runTargets(node).map(runInfo);
  const usable = targets.find((t) => t.workflowId) ?? targets[0];
  if (usable) {
    const distinct = new Set(targets.map((t) => `${t.workflowId}\n${t.profile}`));
    return { ...usable, runNode: usable.node, source: "run", several: distinct.size > 1 ? targets.length : 0 };
  }
  const typed = String(node.properties?.rh_workflow_id ?? "").trim();
  return {
    workflowId: typed,
    profile: String(node.properties?.rh_profile ?? "").trim() || "default",
    kind: "workflow",
    runNode: null,
    source: typed ? "typed" : "none",
    several: 0,
  };
}

/** The override entry as the check route takes it. A wired value's type is not known here,
 * so only its node and field are checked. */
export function overrideEntry(node) {
  const entry = {
    nodeId: String(inputValue(node, "node_id") ?? "").trim(),
    fieldName: String(inputValue(node, "field_name") ?? "").trim(),
  };
  if (!isWired(node, "value")) {
    const text = inputValue(node, "text_value");
    if (typeof text === "string") Object.assign(entry, { value: text, text: true });
  }
  return entry;
}

/** Every node of the open workflow, subgraphs included. */
export function allNodes(graph = app.graph, out = [], seen = new Set()) {
  if (!graph || seen.has(graph)) return out;
  seen.add(graph);
  for (const node of graph.nodes ?? graph._nodes ?? []) {
    out.push(node);
    if (node.subgraph) allNodes(node.subgraph, out, seen);
  }
  return out;
}

/** The node an execution id names: "12", or "12:5" for node 5 inside subgraph node 12. */
export function nodeForExecutionId(id) {
  let graph = app.graph;
  let node = null;
  for (const part of String(id).split(":")) {
    node = graph?.getNodeById(part) ?? graph?.getNodeById(Number(part)) ?? null;
    if (!node) return null;
    graph = node.subgraph;
  }
  return node;
}

/** Sets a widget as if the user had typed it (callbacks run, canvas redraws). */
export function setWidget(node, name, value) {
  const widget = findWidget(node, name);
  if (!widget) return false;
  widget.value = value;
  widget.callback?.(value, app.canvas, node);
  return true;
}

/** Lets the workflow's change tracker notice a change made from code (undo, autosave):
 * `captureCanvasState()` from front end 1.5x on, `checkState()` (deprecated there) before. */
export function markChanged(node) {
  node?.setDirtyCanvas?.(true, true);
  const tracker = app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
  if (!tracker) return;  // no workflow store (older front ends): the next user action records it
  if (typeof tracker.captureCanvasState === "function") tracker.captureCanvasState();
  else tracker.checkState?.();
}
