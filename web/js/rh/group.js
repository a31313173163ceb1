// "Run on RunningHub" for a group: the group's nodes run remotely, through RunningHub's
// native ComfyUI endpoint, as one RH Remote Group node.
//
// - The group's right-click menu gets "Run on RunningHub" (a toggle) and the account
//   profile; a selected group's toolbox gets a cloud button doing the same toggle. The choice is kept in the group's own `flags` (`flags.rh_remote =
//   {account}`): every front end the pack supports (1.32.9 on) serializes a group's flags
//   as they are and restores them on load, and the workflow schema passes them through, so
//   the choice travels with the group (save, load, copy and paste). It names a profile,
//   never a key: keys stay on the server.
// - `app.graphToPrompt` is wrapped: when the graph has marked groups, the prompt it
//   builds (for a queue, and for "Export (API)") goes to the pack's convert route, which
//   replaces each group's nodes by one RHRemoteGroup node; its reply is the prompt that is
//   queued. A refusal (a type that cannot cross the group's border, ...) rejects with the
//   route's message: the queue stops before anything is sent, and the front end shows the
//   message in its error toast.
// - The RH Remote Group node's status events (the same `runninghub.status` events RH Run
//   Workflow gets, under the node id the route handed out) are drawn in the group's title
//   bar: state, elapsed time, the remote node and its steps, and a progress bar.
import { api } from "../../../../scripts/api.js";
import { app } from "../../../../scripts/app.js";
import { markChanged } from "./graph.js";
import { t } from "./i18n.js";
import { RouteError, routes } from "./routes.js";
import { STATUS_EVENT, TERMINAL, duration, remoteText, stateLabel } from "./status.js";

export const GROUP_FLAG = "rh_remote";
const DEFAULT_ACCOUNT = "default";
const BADGE_FONT = 12;
const BAR_HEIGHT = 3;

// ------------------------------------------------------------------ the setting

/** The group's RunningHub setting `{account}`, or null when it runs locally. */
export function groupSetting(group) {
  const value = group?.flags?.[GROUP_FLAG];
  return value && typeof value === "object" ? value : null;
}

function accountOf(group) {
  const account = String(groupSetting(group)?.account ?? "").trim();
  return account || DEFAULT_ACCOUNT;
}

let lastAccount = DEFAULT_ACCOUNT;

/** Marks (or unmarks) a group; `account` keeps the group's profile (or the last one chosen). */
export function setGroupRemote(group, on, account) {
  group.flags ??= {};
  if (on) {
    const chosen = String(account ?? groupSetting(group)?.account ?? lastAccount).trim() || DEFAULT_ACCOUNT;
    group.flags[GROUP_FLAG] = { account: chosen };
    lastAccount = chosen;
  } else {
    delete group.flags[GROUP_FLAG];
  }
  group.setDirtyCanvas?.(true, true);
  app.canvas?.setDirty?.(true, true);
  markChanged(null);
}

// ------------------------------------------------------------------ profiles (names only)

let profileNames = [DEFAULT_ACCOUNT];
let loadingProfiles = null;

/** The profile names the server knows (GET /runninghub/profiles: names, sites and key
 * hints; no key). Kept for the menu, which is built synchronously. */
export function refreshProfiles() {
  loadingProfiles ??= routes.profiles()
    .then((data) => {
      const names = new Set((data?.profiles ?? []).map((p) => p.name).filter(Boolean));
      if (data?.environment?.used || !names.size) names.add(DEFAULT_ACCOUNT);
      profileNames = [...names];
    })
    .catch(() => {})
    .finally(() => {
      loadingProfiles = null;
    });
  return loadingProfiles;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// ------------------------------------------------------------------ the menu

/** The group under the pointer of the canvas' last click, in the graph it shows. */
function groupUnderPointer(canvas) {
  const graph = canvas?.graph;
  const [x, y] = canvas?.graph_mouse ?? [];
  if (!graph?.getGroupOnPos || x == null || y == null) return null;
  return graph.getGroupOnPos(x, y) ?? null;
}

/** Items of the canvas menu (extension hook `getCanvasMenuItems`) when it opens on a group. */
export function groupMenuItems(canvas) {
  const group = groupUnderPointer(canvas);
  if (!group) return [];
  refreshProfiles();  // for the next time the menu opens
  const on = !!groupSetting(group);
  const items = [null, {
    content: on ? t("group.menuStop") : t("group.menuRun"),
    className: "rh-group-toggle",
    callback: () => setGroupRemote(group, !on),
  }];
  if (on) {
    const current = accountOf(group);
    const names = [...new Set([...profileNames, current])];
    items.push({
      content: escapeHtml(t("group.menuAccount", { account: current })),
      className: "rh-group-account",
      has_submenu: true,
      submenu: {
        title: t("group.accountTitle"),
        options: names.map((name) => ({
          content: `${name === current ? "✓ " : ""}${escapeHtml(name)}`,
          className: "rh-group-account-option",
          callback: () => setGroupRemote(group, true, name),
        })),
      },
    });
  }
  return items;
}

// ------------------------------------------------------------------ the selection toolbox

/** The command behind the toolbox button (and the command palette's entry). */
export const TOGGLE_COMMAND = "RunningHub.Group.ToggleRemote";

function isGroup(item) {
  const Group = globalThis.LiteGraph?.LGraphGroup;
  return !!Group && item instanceof Group;
}

/** The groups among the canvas' selected items. */
function selectedGroups() {
  return [...(app.canvas?.selectedItems ?? [])].filter(isGroup);
}

/** Marks every selected group for RunningHub, or unmarks them all when every one is marked
 * already (as the menu's toggle does for one group). */
export function toggleSelectedGroups() {
  const groups = selectedGroups();
  const on = groups.some((group) => !groupSetting(group));
  for (const group of groups) {
    if (on !== !!groupSetting(group)) setGroupRemote(group, on);
  }
}

/** The extension's commands (hook `commands`). Labels are looked up when shown: the
 * strings load after the extension is registered. The toolbox button's tooltip is the
 * front end's own translation of the command (locales/<lang>/commands.json). */
export function groupCommands() {
  return [{
    id: TOGGLE_COMMAND,
    icon: "pi pi-cloud",
    label: () => t("group.toolboxLabel"),
    tooltip: () => t("group.toolboxLabel"),
    function: toggleSelectedGroups,
  }];
}

/** The toolbox's buttons for a selected item (hook `getSelectionToolboxCommands`). */
export function toolboxCommands(item) {
  return isGroup(item) ? [TOGGLE_COMMAND] : [];
}

// ------------------------------------------------------------------ queue time

export class GroupConvertError extends Error {
  constructor(message, reason = message) {
    super(message);
    this.reason = reason;  // why, without "Nothing was queued"
  }
}

/** Every marked group of the graph and of the subgraphs it uses, with the execution-id
 * prefixes of its nodes ("12", or "7:12" for node 12 inside subgraph node 7). A subgraph
 * used twice gives its marked groups twice: each use runs on its own. */
function markedGroups(rootGraph) {
  const found = [];
  const visit = (graph, prefix, label, seen) => {
    if (!graph || seen.has(graph)) return;
    const inner = new Set([...seen, graph]);
    const taken = new Map();  // node -> the marked group it is in
    for (const group of graph.groups ?? []) {
      if (!groupSetting(group)) continue;
      group.recomputeInsideNodes?.();
      const nodes = [...(group.nodes ?? [])];
      for (const node of nodes) {
        const other = taken.get(node);
        if (other) {
          throw new GroupConvertError(t("group.overlap", {
            node: `${prefix}${node.id}`, a: other.title || t("group.untitled"), b: group.title || t("group.untitled"),
          }));
        }
        taken.set(node, group);
      }
      found.push({
        group, account: accountOf(group), prefixes: nodes.map((n) => `${prefix}${n.id}`),
        title: `${label}${group.title || t("group.untitled")}`,
      });
    }
    for (const node of graph.nodes ?? []) {
      if (node.subgraph && !taken.has(node)) {
        visit(node.subgraph, `${prefix}${node.id}:`, `${label}${node.title ?? node.id} › `, inner);
      }
    }
  };
  visit(rootGraph, "", "", new Set());
  return found;
}

/** The API prompt's ids of a group's nodes: each node's own id, and the flattened ids of
 * the nodes inside it when it is a subgraph. Nodes that are not in the prompt (muted,
 * bypassed, virtual) are left out. */
function promptIds(output, prefixes) {
  const keys = Object.keys(output ?? {});
  const ids = [];
  for (const prefix of prefixes) {
    for (const key of keys) if (key === prefix || key.startsWith(`${prefix}:`)) ids.push(key);
  }
  return [...new Set(ids)];
}

const running = new Map();  // RH Remote Group node id -> {group, title}

/** `output` with every marked group replaced by its RH Remote Group node (the convert route),
 * or `output` itself when nothing is marked. Throws GroupConvertError saying what to do: the
 * front end's queue (and export) then stops, and its error handler shows the message as a
 * toast — one message, nothing queued. */
export async function convertPrompt(output, rootGraph = app.graph) {
  const request = markedGroups(rootGraph)
    .map((g) => ({ ...g, node_ids: promptIds(output, g.prefixes) }))
    .filter((g) => g.node_ids.length);
  if (!request.length) return output;
  let reply;
  try {
    reply = await routes.convertGroups(output, request.map((g) => ({ title: g.title, node_ids: g.node_ids, account: g.account })));
  } catch (err) {
    const message = err instanceof RouteError && err.status === 400
      ? t("group.refused", { error: err.message })
      : t("group.convertFailed", { error: err.message });
    throw new GroupConvertError(message, err.message);
  }
  (reply?.groups ?? []).forEach((info, index) => {
    const source = request[index];
    if (!info?.node_id || !source) return;
    running.set(String(info.node_id), { group: source.group, title: source.title });
    source.group.rhRun = { ...(source.group.rhRun ?? {}), nodeId: String(info.node_id) };
  });
  if (!reply?.prompt || typeof reply.prompt !== "object") {
    throw new GroupConvertError(t("group.convertFailed", { error: "no prompt in the reply" }));
  }
  return reply.prompt;
}

function exportedLocally(err) {
  app.extensionManager?.toast?.add({
    severity: "warn", summary: "RunningHub", detail: t("group.exportedLocal", { error: err.reason }), life: 8000,
  });
}

/** Wraps `app.graphToPrompt` (the queue and "Export (API)" both build the prompt with it). */
export function wrapGraphToPrompt() {
  const original = app.graphToPrompt;
  if (typeof original !== "function" || original.rhWrapped) return;
  // The queue passes the graph; the front end's workflow exports call it with no argument.
  const wrapped = async function (...args) {
    const result = await original.apply(this, args);
    if (!result?.output) return result;
    try {
      result.output = await convertPrompt(result.output, args[0] ?? app.rootGraph ?? app.graph);
    } catch (err) {
      if (args.length > 0 || !(err instanceof GroupConvertError)) throw err;  // a queue: nothing is sent
      exportedLocally(err);  // an export: the workflow is still saved, its API prompt keeps the group local
    }
    return result;
  };
  wrapped.rhWrapped = true;
  app.graphToPrompt = wrapped;
}

// ------------------------------------------------------------------ status on the group

function isLive(run) {
  return !!run?.data && !TERMINAL.has(run.data.state) && !run.frozen;
}

function elapsedOf(run) {
  const since = isLive(run) ? (performance.now() - run.receivedAt) / 1000 : 0;
  return (run.data.elapsed ?? 0) + since;
}

/** 0..1 of the remote prompt: its nodes done, plus the running node's steps. */
function progressOf(remote) {
  if (!remote) return 0;
  const steps = remote.value != null && remote.max ? Math.min(1, remote.value / remote.max) : 0;
  if (remote.nodes_total) return Math.min(1, (Math.min(remote.nodes_done ?? 0, remote.nodes_total) + steps) / remote.nodes_total);
  return steps;
}

function update(entry, data) {
  const group = entry.group;
  const previous = group.rhRun ?? {};
  const fresh = data.state === "SUBMITTING" || previous.nodeId !== String(data.node);
  if (data.state === "WARNING") {
    group.rhRun = { ...previous, warning: data.warning ?? data.line ?? null };
  } else {
    const merged = fresh ? { ...data } : { ...(previous.data ?? {}), ...data };
    const step = progressOf(merged.remote);
    group.rhRun = {
      nodeId: String(data.node), data: merged, receivedAt: performance.now(), frozen: false,
      best: Math.max(fresh ? 0 : previous.best ?? 0, step), error: fresh ? null : previous.error ?? null,
      warning: fresh ? null : previous.warning ?? null, states: [...(fresh ? [] : previous.states ?? []), merged.state],
    };
  }
  app.canvas?.setDirty?.(true, false);
}

/** The status text of a group's run (also read by the tests): `running · 12 s · KSampler #3 · 12/20`. */
export function groupStatusText(group) {
  const run = group?.rhRun;
  if (!run?.data) return "";
  const parts = [stateLabel(run.data.state), duration(elapsedOf(run))];
  if (isLive(run) && run.data.remote) parts.push(remoteText(run.data.remote));
  if (run.data.cost) parts.push(t("status.cost", { cost: run.data.cost }));
  if (run.warning) parts.push(`⚠ ${run.warning}`);
  if (run.error) parts.push(run.error);
  return parts.filter(Boolean).join(" · ");
}

function fractionOf(run) {
  if (!run?.data) return null;
  if (run.data.state === "SUCCESS") return 1;
  return isLive(run) && run.best > 0 ? run.best : null;
}

function freezeAll() {
  for (const { group } of running.values()) {
    if (isLive(group.rhRun)) {
      group.rhRun.data.elapsed = elapsedOf(group.rhRun);
      group.rhRun.frozen = true;
    }
  }
  app.canvas?.setDirty?.(true, false);
}

function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x, y, w, h, r);
  else ctx.rect(x, y, w, h);
}

function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(`${cut}…`).width > width) cut = cut.slice(0, -1);
  return `${cut}…`;
}

function font(weight = "") {
  return `${weight}${BADGE_FONT}px ${globalThis.LiteGraph?.NODE_FONT ?? "Arial"}, sans-serif`;
}

/** Draws a marked group's badge in its title bar and, once it has run, a strip under the
 * title bar with the run's status line and a progress bar. */
function drawGroup(ctx, group) {
  const [x, y] = group.pos;
  const [width] = group.size;
  const titleHeight = group.titleHeight ?? globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
  const run = group.rhRun;
  const status = groupStatusText(group);
  const badge = t("group.badge", { account: accountOf(group) });
  const state = run?.data?.state;
  const accent = run?.error || state === "FAILED" || state === "CANCEL" ? "#ff5555"
    : state === "SUCCESS" ? "#4caf50" : isLive(run) ? "#e8b93b" : "#4a90e2";
  const fraction = fractionOf(run);
  group.rhDrawn = { badge, status, fraction, state: state ?? null };  // what the group shows (read by the tests)
  ctx.save();
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";

  // The badge, right-aligned in the title bar.
  ctx.font = font("600 ");
  const label = fitText(ctx, badge, Math.max(40, width * 0.5));
  const boxWidth = ctx.measureText(label).width + 12;
  const boxHeight = BADGE_FONT + 8;
  const boxX = x + width - boxWidth - 6;
  const boxY = y + (titleHeight - boxHeight) / 2;
  ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
  roundRect(ctx, boxX, boxY, boxWidth, boxHeight, 4);
  ctx.fill();
  ctx.strokeStyle = accent;
  ctx.lineWidth = 1;
  ctx.stroke();
  ctx.fillStyle = "#ffffff";
  ctx.fillText(label, boxX + 6, boxY + boxHeight / 2 + 0.5);

  // The run: its status line and progress bar, in a strip under the title bar.
  if (status) {
    const stripHeight = BADGE_FONT + 6 + BAR_HEIGHT;
    const top = y + titleHeight;
    ctx.fillStyle = "rgba(0, 0, 0, 0.5)";
    ctx.fillRect(x, top, width, stripHeight);
    ctx.font = font();
    ctx.fillStyle = accent;
    ctx.fillText(fitText(ctx, status, width - 16), x + 8, top + (stripHeight - BAR_HEIGHT) / 2 + 0.5);
    if (fraction != null) {
      ctx.fillStyle = "rgba(255, 255, 255, 0.12)";
      ctx.fillRect(x, top + stripHeight - BAR_HEIGHT, width, BAR_HEIGHT);
      ctx.fillStyle = accent;
      ctx.fillRect(x, top + stripHeight - BAR_HEIGHT, width * fraction, BAR_HEIGHT);
    }
  }
  ctx.restore();
}

function drawMarkedGroups(ctx) {
  const graph = app.canvas?.graph;
  for (const group of graph?.groups ?? []) {
    if (groupSetting(group)) drawGroup(ctx, group);
  }
}

export function setupGroups() {
  wrapGraphToPrompt();
  refreshProfiles();
  const canvas = app.canvas;
  if (canvas) {
    const previous = canvas.onDrawForeground;
    canvas.onDrawForeground = function (ctx, area) {
      const result = previous?.apply(this, arguments);
      try {
        drawMarkedGroups(ctx, area);
      } catch (err) {
        console.debug("RunningHub: drawing a group failed", err);
      }
      return result;
    };
  }
  api.addEventListener(STATUS_EVENT, ({ detail }) => {
    const entry = detail?.node != null ? running.get(String(detail.node)) : null;
    if (entry) update(entry, detail);
  });
  api.addEventListener("executed", ({ detail }) => {
    const entry = detail?.node != null ? running.get(String(detail.node)) : null;
    const status = detail?.output?.rh_status?.[0];
    if (entry && status && !entry.group.rhRun?.data) update(entry, { ...status, node: detail.node });
  });
  api.addEventListener("execution_error", ({ detail }) => {
    const entry = detail?.node_id != null ? running.get(String(detail.node_id)) : null;
    if (!entry) return;
    entry.group.rhRun = { ...(entry.group.rhRun ?? {}), error: String(detail.exception_message ?? "").split("\n")[0] };
    if (!entry.group.rhRun.data) {
      entry.group.rhRun.data = { state: "FAILED", elapsed: 0 };
      entry.group.rhRun.receivedAt = performance.now();
    }
    freezeAll();
  });
  api.addEventListener("execution_interrupted", freezeAll);
  api.addEventListener("execution_success", freezeAll);
  setInterval(() => {
    if ([...running.values()].some(({ group }) => isLive(group.rhRun))) app.canvas?.setDirty?.(true, false);
  }, 1000);
}
