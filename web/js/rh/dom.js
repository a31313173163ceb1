// A tiny element builder and the pack's stylesheet (ComfyUI palette variables only).

/** `h("button", {class: "x", onclick}, "text", child)` */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const CSS = `
.rh-settings { display: flex; flex-direction: column; gap: 0.6rem; width: 100%; min-width: 22rem; box-sizing: border-box; font-size: 0.9rem; }
.rh-settings-host { flex: 1 1 auto !important; min-width: 0; }
.rh-muted { color: var(--descrip-text, #999); font-size: 0.85em; margin: 0; }
.rh-note { margin: 0; padding: 0.35rem 0.5rem; border-left: 3px solid var(--p-primary-color, #4a90e2); background: var(--comfy-input-bg, #222); }
.rh-profile { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 0.45rem 0.6rem; display: flex; flex-direction: column; gap: 0.3rem; }
.rh-profile-head { display: flex; align-items: center; gap: 0.5rem; flex-wrap: wrap; }
.rh-profile-name { font-weight: 600; }
.rh-chip { font-size: 0.8em; padding: 0.05rem 0.45rem; border-radius: 999px; background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #444); }
.rh-keys { display: flex; flex-wrap: wrap; gap: 0.35rem; }
.rh-key { display: inline-flex; align-items: center; gap: 0.25rem; font-family: monospace; padding: 0.05rem 0.1rem 0.05rem 0.45rem; border-radius: 4px; background: var(--comfy-input-bg, #222); }
.rh-spacer { flex: 1; }
.rh-btn { cursor: pointer; font: inherit; font-size: 0.85em; color: var(--input-text, #ddd); background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #555); border-radius: 4px; padding: 0.15rem 0.55rem; }
.rh-btn:hover:not(:disabled) { border-color: var(--p-primary-color, #4a90e2); }
.rh-btn:disabled { opacity: 0.5; cursor: default; }
.rh-btn-primary { border-color: var(--p-primary-color, #4a90e2); }
.rh-btn-danger:hover:not(:disabled) { border-color: var(--error-text, #ff4444); color: var(--error-text, #ff4444); }
.rh-btn-small { padding: 0 0.35rem; font-size: 0.8em; }
.rh-editor { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 0.5rem 0.6rem; display: grid; grid-template-columns: auto 1fr; gap: 0.4rem 0.6rem; align-items: center; margin: 0; }
.rh-editor legend { padding: 0 0.3rem; font-weight: 600; }
.rh-editor .rh-actions { grid-column: 1 / -1; display: flex; gap: 0.4rem; flex-wrap: wrap; }
.rh-input { font: inherit; color: var(--input-text, #ddd); background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #555); border-radius: 4px; padding: 0.2rem 0.4rem; min-width: 0; }
.rh-site-row { display: flex; gap: 0.4rem; }
.rh-site-row .rh-input { flex: 1; }
.rh-result { font-size: 0.85em; white-space: pre-wrap; overflow-wrap: anywhere; }
.rh-ok { color: var(--p-green-400, #4caf50); }
.rh-bad { color: var(--error-text, #ff5555); }
.rh-message { grid-column: 1 / -1; min-height: 1.2em; font-size: 0.85em; overflow-wrap: anywhere; }

.rh-overlay { position: fixed; inset: 0; z-index: 10000; background: rgba(0,0,0,0.55); display: flex; align-items: center; justify-content: center; }
.rh-dialog { width: min(64rem, 94vw); max-height: 86vh; display: flex; flex-direction: column; gap: 0.5rem; padding: 0.8rem 1rem; color: var(--fg-color, #ddd); background: var(--comfy-menu-bg, #353535); border: 1px solid var(--border-color, #555); border-radius: 8px; box-shadow: 0 8px 32px rgba(0,0,0,0.5); font-size: 0.9rem; }
.rh-dialog header { display: flex; align-items: center; gap: 0.5rem; }
.rh-dialog h3 { margin: 0; font-size: 1.05rem; flex: 1; }
.rh-dialog .rh-row { display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap; }
.rh-dialog label { display: inline-flex; gap: 0.35rem; align-items: center; }
.rh-dialog .rh-search { width: 100%; box-sizing: border-box; }
.rh-table-wrap { overflow: auto; flex: 1; min-height: 8rem; border: 1px solid var(--border-color, #444); border-radius: 4px; }
.rh-fields { width: 100%; border-collapse: collapse; font-size: 0.85rem; }
.rh-fields th { position: sticky; top: 0; text-align: left; background: var(--comfy-input-bg, #222); padding: 0.3rem 0.45rem; font-weight: 600; }
.rh-fields td { padding: 0.22rem 0.45rem; border-top: 1px solid var(--border-color, #3a3a3a); vertical-align: top; }
.rh-fields td.rh-value { max-width: 22rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-family: monospace; }
.rh-fields td.rh-mono { font-family: monospace; }
.rh-tasks { display: flex; flex-direction: column; gap: 0.5rem; padding: 0.6rem; font-size: 0.9rem; height: 100%; box-sizing: border-box; overflow: auto; }
.rh-tasks h3 { margin: 0; font-size: 1.05rem; flex: 1; }
.rh-task-list { display: flex; flex-direction: column; gap: 0.4rem; }
.rh-task-row { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 0.35rem 0.5rem; display: flex; flex-direction: column; gap: 0.2rem; }
.rh-task-head { display: flex; align-items: center; gap: 0.5rem; }
.rh-task-workflow { font-weight: 600; flex: 1; overflow-wrap: anywhere; }
.rh-task-meta { font-family: monospace; overflow-wrap: anywhere; }
.rh-task-message { overflow-wrap: anywhere; max-height: 6em; overflow: auto; }
.rh-task-actions { display: flex; gap: 0.35rem; flex-wrap: wrap; }
.rh-task-may_exist .rh-task-status, .rh-task-failed .rh-task-status { color: var(--error-text, #ff5555); }
.rh-task-running .rh-task-status, .rh-task-queued .rh-task-status { color: var(--p-primary-color, #4a90e2); }
.rh-fields tbody tr { cursor: pointer; }
.rh-fields tbody tr:hover, .rh-fields tbody tr:focus { background: var(--comfy-input-bg, #2a2a2a); outline: none; }
.rh-fields tbody tr.rh-current { box-shadow: inset 3px 0 0 var(--p-primary-color, #4a90e2); }
.rh-node-first td { border-top-color: var(--border-color, #666); }

.rh-widget { box-sizing: border-box; width: 100%; height: 100%; padding: 2px 6px; font-size: 11px; line-height: 15px; color: var(--descrip-text, #aaa); overflow: hidden; font-family: var(--comfy-font, sans-serif); }
.rh-widget .rh-line { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.rh-widget .rh-wrap { white-space: normal; overflow-wrap: anywhere; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.rh-state { font-weight: 600; color: var(--fg-color, #ddd); }
.rh-state-SUCCESS { color: var(--p-green-400, #4caf50); }
.rh-state-FAILED, .rh-state-CANCEL { color: var(--error-text, #ff5555); }
.rh-state-RUNNING { color: #e8b93b; }
.rh-task { font-family: monospace; user-select: text; }
.rh-bar { height: 4px; margin: 1px 0 2px; border-radius: 2px; background: var(--border-color, #3a3a3a); overflow: hidden; }
.rh-bar[hidden] { display: none; }
.rh-bar-fill { height: 100%; width: 0; background: #e8b93b; transition: width 0.2s linear; }
`;

export function injectStyle() {
  if (document.getElementById("rh-bridge-style")) return;
  document.head.append(h("style", { id: "rh-bridge-style" }, CSS));
}
