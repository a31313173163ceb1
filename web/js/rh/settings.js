// The "RunningHub" section of ComfyUI's settings dialog: key profiles (add, replace, remove
// keys; a profile's site), and a Test action per profile. Keys typed here go straight to the
// pack's route and the field is cleared at once: no key is kept in the page, in
// localStorage, in the settings file or in the workflow. This setting's own value is never set.
import { app } from "../../../../scripts/app.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { routes } from "./routes.js";
import { CHECK_SETTING, scheduleCheck } from "./checks.js";

export const PROFILES_SETTING = "RunningHub.Accounts.Profiles";

async function confirmAction(title, message) {
  const dialog = app.extensionManager?.dialog;
  if (dialog?.confirm) return (await dialog.confirm({ title, message, type: "delete" })) === true;
  return window.confirm(message);
}

function toast(severity, detail) {
  app.extensionManager?.toast?.add({ severity, summary: "RunningHub", detail, life: 4000 });
}

function describeTest(result) {
  return result.keys.map((k) => (k.ok
    ? t("settings.testOk", {
      key: k.key, coins: k.coins ?? t("settings.unknown"), tasks: k.running_tasks ?? t("settings.unknown"),
      currency: k.currency ?? t("settings.unknown"), host: result.host,
    })
    : t("settings.testFail", { key: k.key, error: k.error })));
}

function testButton(profileName, resultBox) {
  const button = h("button", { class: "rh-btn rh-test", type: "button" }, t("settings.test"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = t("settings.testing");
    resultBox.className = "rh-result rh-muted";
    resultBox.textContent = t("settings.testing");
    try {
      const result = await routes.testProfile(profileName);
      resultBox.className = `rh-result ${result.ok ? "rh-ok" : "rh-bad"}`;
      resultBox.textContent = describeTest(result).join("\n");
    } catch (err) {
      resultBox.className = "rh-result rh-bad";
      resultBox.textContent = err.message;
    } finally {
      button.disabled = false;
      button.textContent = t("settings.test");
    }
  });
  return button;
}

/** Renders the profiles panel; `type` of the setting (called by the settings dialog). */
export function renderProfilesPanel() {
  const root = h("div", { class: "rh-settings", "data-testid": "rh-settings" });
  const intro = h("p", { class: "rh-muted rh-intro" });
  const notes = h("div", { class: "rh-notes" });
  const list = h("div", { class: "rh-profiles" });
  const names = h("datalist", { id: `rh-profile-names-${Math.random().toString(36).slice(2)}` });

  const nameInput = h("input", {
    class: "rh-input rh-profile-name-input", value: "default", placeholder: t("settings.profilePlaceholder"),
    list: names.id, spellcheck: false, autocomplete: "off",
  });
  const siteSelect = h("select", { class: "rh-input rh-site" },
    h("option", { value: "cn" }, t("settings.siteCn")),
    h("option", { value: "ai" }, t("settings.siteAi")),
    h("option", { value: "custom" }, t("settings.siteCustom")));
  const urlInput = h("input", {
    class: "rh-input rh-base-url", placeholder: t("settings.baseUrlPlaceholder"), spellcheck: false,
    autocomplete: "off", hidden: true,
  });
  // A password field that is not in a form: the browser shows dots and offers no saving.
  const keyInput = h("input", {
    class: "rh-input rh-key-input", type: "password", placeholder: t("settings.keyPlaceholder"),
    autocomplete: "new-password", spellcheck: false, "data-lpignore": "true",
  });
  const addBtn = h("button", { class: "rh-btn rh-btn-primary rh-add-key", type: "button" }, t("settings.addKey"));
  const replaceBtn = h("button", { class: "rh-btn rh-replace-keys", type: "button" }, t("settings.replaceKeys"));
  const siteBtn = h("button", { class: "rh-btn rh-save-site", type: "button" }, t("settings.saveSite"));
  const message = h("div", { class: "rh-message" });
  const editor = h("fieldset", { class: "rh-editor" },
    h("legend", {}, t("settings.editor")),
    h("label", {}, t("settings.profile")), nameInput,
    h("label", {}, t("settings.site")), h("div", { class: "rh-site-row" }, siteSelect, urlInput),
    h("label", {}, t("settings.key")), keyInput,
    h("div", { class: "rh-actions" }, addBtn, replaceBtn, siteBtn),
    h("p", { class: "rh-muted", style: { gridColumn: "1 / -1" } }, t("settings.poolNote")),
    message);
  root.append(intro, notes, list, editor, names);

  let known = [];

  function say(kind, text) {
    message.className = `rh-message ${kind === "ok" ? "rh-ok" : kind === "bad" ? "rh-bad" : "rh-muted"}`;
    message.textContent = text;
  }

  function syncSite() {
    urlInput.hidden = siteSelect.value !== "custom";
  }

  function fillFromProfile() {
    const profile = known.find((p) => p.name === nameInput.value.trim());
    if (!profile) return;
    siteSelect.value = profile.site;
    urlInput.value = profile.base_url ?? "";
    syncSite();
  }

  function siteChange() {
    const site = siteSelect.value;
    if (site !== "custom") return { site };
    const url = urlInput.value.trim();
    if (!url) throw new Error(t("settings.needUrl"));
    return { site, base_url: url };
  }

  function profileCard(profile) {
    const result = h("div", { class: "rh-result" });
    // Each stored key comes as {id, hint}: the id (opaque, handed out by the server) removes
    // it; the hint ("…" + last 4) is all the page ever shows.
    const keys = profile.keys.length
      ? profile.keys.map(({ id, hint }) => {
        const remove = h("button", { class: "rh-btn rh-btn-small rh-btn-danger rh-remove-key", type: "button" },
          t("settings.removeKey"));
        remove.addEventListener("click", async () => {
          if (!(await confirmAction(t("settings.removeKey"), t("settings.confirmRemoveKey", { key: hint, name: profile.name })))) return;
          try {
            const reply = await routes.saveProfile(profile.name, { remove_key_ids: [id] });
            // A warning means the id was stale (the server restarted): nothing was removed.
            if (reply.warnings?.length) toast("warn", reply.warnings.join("\n"));
            else toast("success", t("settings.keyRemoved", { key: hint, name: profile.name }));
          } catch (err) {
            toast("error", err.message);
          }
          refresh();
        });
        return h("span", { class: "rh-key", "data-key": hint, "data-key-id": id }, hint, remove);
      })
      : [h("span", { class: "rh-muted" }, t("settings.noKeys"))];
    const del = h("button", { class: "rh-btn rh-btn-danger rh-delete-profile", type: "button" }, t("settings.deleteProfile"));
    del.addEventListener("click", async () => {
      if (!(await confirmAction(t("settings.deleteProfile"), t("settings.confirmDelete", { name: profile.name })))) return;
      try {
        await routes.deleteProfile(profile.name);
        toast("success", t("settings.deleted", { name: profile.name }));
      } catch (err) {
        toast("error", err.message);
      }
      refresh();
    });
    const edit = h("span", { class: "rh-profile-name", title: profile.name }, profile.name);
    edit.addEventListener("click", () => {
      nameInput.value = profile.name;
      fillFromProfile();
    });
    return h("div", { class: "rh-profile", "data-profile": profile.name },
      h("div", { class: "rh-profile-head" }, edit,
        h("span", { class: "rh-chip rh-site-chip" }, profile.site === "custom" ? profile.base_url : profile.host),
        h("span", { class: "rh-spacer" }),
        profile.keys.length ? testButton(profile.name, result) : null, del),
      h("div", { class: "rh-keys" }, keys), result);
  }

  async function refresh() {
    let data;
    try {
      data = await routes.profiles();
    } catch (err) {
      list.replaceChildren(h("p", { class: "rh-bad" }, t("common.failedRequest", { error: err.message })));
      return;
    }
    known = data.profiles;
    intro.textContent = t("settings.intro", { file: data.credentials_file });
    const noteItems = [];
    if (data.base_url_override) noteItems.push(h("p", { class: "rh-note" }, t("settings.overrideNote", { url: data.base_url_override })));
    if (data.environment) {
      const env = data.environment;
      if (env.used) {
        const result = h("div", { class: "rh-result" });
        noteItems.push(h("div", { class: "rh-note rh-env" },
          h("div", {}, t("settings.envNote", { keys: env.keys.join(", "), host: env.host })),
          h("div", { class: "rh-row" }, testButton("default", result)), result));
      } else {
        noteItems.push(h("p", { class: "rh-note rh-muted" }, t("settings.envShadowed", { keys: env.keys.join(", ") })));
      }
    }
    notes.replaceChildren(...noteItems);
    list.replaceChildren(...(known.length ? known.map(profileCard) : [h("p", { class: "rh-muted rh-empty" }, t("settings.noProfiles"))]));
    names.replaceChildren(...known.map((p) => h("option", { value: p.name })));
    fillFromProfile();
    scheduleCheck(0);
  }

  async function save(kind) {
    const name = nameInput.value.trim();
    // Take the key out of the field first: whatever happens next, the page keeps no copy.
    const key = keyInput.value.trim();
    keyInput.value = "";
    if (!name) return say("bad", t("settings.needName"));
    let change;
    try {
      change = siteChange();
    } catch (err) {
      return say("bad", err.message);
    }
    if (kind === "add" || kind === "replace") {
      if (!key) return say("bad", t("settings.needKey"));
      change[kind === "add" ? "add_keys" : "keys"] = [key];
    }
    for (const b of [addBtn, replaceBtn, siteBtn]) b.disabled = true;
    say("muted", t("settings.saving"));
    try {
      const reply = await routes.saveProfile(name, change);
      const keys = reply.profile.keys.map((k) => k.hint).join(", ") || t("settings.noKeys");
      say("ok", [t("settings.saved", { name, keys }), ...(reply.warnings ?? [])].join("\n"));
      await refresh();
    } catch (err) {
      say("bad", err.message);
    } finally {
      for (const b of [addBtn, replaceBtn, siteBtn]) b.disabled = false;
    }
  }

  siteSelect.addEventListener("change", syncSite);
  nameInput.addEventListener("change", fillFromProfile);
  addBtn.addEventListener("click", () => save("add"));
  replaceBtn.addEventListener("click", () => save("replace"));
  siteBtn.addEventListener("click", () => save("site"));
  keyInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") save("add");
  });
  // The settings dialog gives a custom setting a right-aligned slot sized to its content;
  // let this panel take the row's width instead.
  requestAnimationFrame(() => root.parentElement?.closest(".form-input")?.classList.add("rh-settings-host"));
  refresh();
  return root;
}

export function settingsDefinitions() {
  return [
    {
      id: PROFILES_SETTING,
      category: ["RunningHub", "Accounts", "Profiles"],
      name: "Key profiles",
      tooltip: "Named profiles of RunningHub API keys and their site. Nodes name a profile in their 'account' input; the keys stay on the ComfyUI server.",
      type: () => renderProfilesPanel(),
      defaultValue: "",
      sortOrder: 10,
    },
    {
      id: CHECK_SETTING,
      category: ["RunningHub", "Overrides", "CheckOnChange"],
      name: "Check RH Node Override entries while editing",
      tooltip: "Checks each override's node id and field against the remote workflow whenever the graph changes, and marks wrong entries on the node. The run checks again before anything is billed.",
      type: "boolean",
      defaultValue: true,
      sortOrder: 5,
      onChange: () => scheduleCheck(0),
    },
  ];
}
