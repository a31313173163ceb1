// UI strings of the pack, from its locales/<lang>/main.json (key "runninghub"), which
// ComfyUI serves merged with every other pack's at /i18n. English is the fallback.
import { api } from "../../../../scripts/api.js";
import { app } from "../../../../scripts/app.js";

let catalog = {};
let everything = {};
let loading = null;

export function loadStrings() {
  loading ??= api
    .fetchApi("/i18n")
    .then((resp) => (resp.ok ? resp.json() : {}))
    .then((all) => {
      everything = all || {};
      catalog = {};
      for (const [lang, messages] of Object.entries(all || {})) {
        if (messages && typeof messages.runninghub === "object") catalog[lang] = messages.runninghub;
      }
    })
    .catch(() => {
      catalog = {};
      everything = {};
    });
  return loading;
}

/** Every pack's translations as /i18n served them: `{lang: {nodeDefs, settings, ...}}`. */
export function catalogAll() {
  return everything;
}

/** The front end's language (setting Comfy.Locale), e.g. "en", "zh", "zh-TW". */
export function locale() {
  try {
    return app.extensionManager?.setting?.get("Comfy.Locale") || navigator.language.split("-")[0] || "en";
  } catch {
    return "en";
  }
}

function lookup(tree, path) {
  return path.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), tree);
}

/** `t("settings.saved", {name})`: the string for the current language, `{name}` filled in. */
export function t(path, params = {}) {
  const lang = locale();
  let text = lookup(catalog[lang], path);
  if (typeof text !== "string") text = lookup(catalog[lang.split("-")[0]], path);
  if (typeof text !== "string") text = lookup(catalog.en, path);
  if (typeof text !== "string") text = path;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}
