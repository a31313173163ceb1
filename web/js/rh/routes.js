// The pack's server routes (host/routes.py). A key goes to the server once, in a POST body,
// and never comes back: replies carry only "…" + its last 4 characters.
import { api } from "../../../../scripts/api.js";

export class RouteError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await api.fetchApi(`/runninghub${path}`, init);
  } catch (err) {
    throw new RouteError(String(err?.message || err), 0, null);
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) throw new RouteError(data?.error || `HTTP ${resp.status}`, resp.status, data);
  return data;
}

const enc = encodeURIComponent;

export const routes = {
  profiles: () => call("GET", "/profiles"),
  saveProfile: (name, change) => call("POST", `/profiles/${enc(name)}`, change),
  deleteProfile: (name) => call("DELETE", `/profiles/${enc(name)}`),
  testProfile: (name) => call("POST", `/profiles/${enc(name)}/test`),
  fields: (workflowId, profile, refresh = false) =>
    call("GET", `/workflows/${enc(workflowId)}/fields?profile=${enc(profile || "default")}${refresh ? "&refresh=1" : ""}`),
  check: (workflowId, profile, overrides) =>
    call("POST", `/workflows/${enc(workflowId)}/check`, { profile: profile || "default", overrides }),
  tasks: () => call("GET", "/tasks"),
  cancelTask: (entry) => call("POST", `/tasks/${enc(entry)}/cancel`, {}),
  clearTask: (entry) => call("DELETE", `/tasks/${enc(entry)}`),
  // Marked groups → one RH Remote Group node each (body: the API prompt, the groups' titles,
  // node ids and profile names; never a key).
  convertGroups: (prompt, groups) => call("POST", "/group/convert", { prompt, groups }),
};
