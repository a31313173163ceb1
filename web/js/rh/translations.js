// Keeps the packs' translations (locales/<lang>/*.json, served at /i18n) in the front end's
// vue-i18n for languages other than English.
//
// ComfyUI front end 1.32 merges /i18n into vue-i18n before it has loaded the chosen
// language's own messages; loading them (setLocaleMessage) then replaces the merged ones, so
// every pack shows English node names, sockets, tooltips and settings in zh, ja, ... This
// merges the same /i18n data again once the language has loaded: before the node types are
// registered (the `init` hook), and after a language switch. It only uses the i18n instance
// the Vue app provides; when that cannot be found it does nothing.
//
// Front ends from 1.49 on (the oldest after 1.32.9 that the tests run) merge the packs'
// translations themselves once a language has loaded, so there this does nothing and never
// reaches into the Vue app's internals.
import { app } from "../../../../scripts/app.js";
import { catalogAll, locale } from "./i18n.js";

const WAIT_MS = 5_000;
const KEEPS_TRANSLATIONS_FROM = [1, 49];

/** Whether the front end (its public version global) keeps the packs' translations itself. */
function frontEndKeepsTranslations() {
  const [major, minor] = String(window.__COMFYUI_FRONTEND_VERSION__ ?? "").split(".").map(Number);
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return false;
  const [fixedMajor, fixedMinor] = KEEPS_TRANSLATIONS_FROM;
  return major > fixedMajor || (major === fixedMajor && minor >= fixedMinor);
}

function vueI18n() {
  const vueApp = document.querySelector("#vue-app")?.__vue_app__;
  const provides = vueApp?._context?.provides;
  if (!provides) return null;
  for (const key of [...Object.getOwnPropertySymbols(provides), ...Object.keys(provides)]) {
    const candidate = provides[key]?.global;
    if (candidate?.mergeLocaleMessage && candidate?.getLocaleMessage) return candidate;
  }
  return null;
}

/** Languages the front end ships messages for (the options of its Language setting). */
function shippedLanguages() {
  const options = app.extensionManager?.setting?.settings?.["Comfy.Locale"]?.options;
  return Array.isArray(options) ? options.map((o) => (typeof o === "string" ? o : o?.value)) : [];
}

/** Resolves once vue-i18n holds the language's own messages (its "g" section), or after a wait. */
async function languageLoaded(i18n, lang) {
  if (!shippedLanguages().includes(lang)) return false;  // nothing will be loaded for it
  const started = performance.now();
  while (performance.now() - started < WAIT_MS) {
    if (i18n.getLocaleMessage(lang)?.g) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** Merges /i18n for the current language if the language's loading dropped it. Returns true
 * when something was merged back. */
export async function restoreTranslations() {
  if (frontEndKeepsTranslations()) return false;
  const lang = locale();
  const i18n = vueI18n();
  const all = catalogAll();
  const messages = all?.[lang];
  if (!i18n || !messages || lang === "en") return false;
  await languageLoaded(i18n, lang);
  if (i18n.getLocaleMessage(lang)?.nodeDefs?.RHNodeOverride) return false;  // still there
  i18n.mergeLocaleMessage(lang, messages);
  return true;
}

/** After a language switch: merge again, then let the front end re-register node types. */
export function watchLanguage() {
  let current = locale();
  setInterval(async () => {
    const lang = locale();
    if (lang === current) return;
    current = lang;
    if (await restoreTranslations()) {
      await app.extensionManager?.command?.execute?.("Comfy.RefreshNodeDefinitions");
    }
  }, 1000);
}
