"""The pack's HTTP routes under `/runninghub/...`, for the front end (settings dialog, field
picker, override check). ComfyUI also serves each of them under `/api/runninghub/...`.

    GET    /runninghub/profiles                              profiles; each key as {id, hint}
    POST   /runninghub/profiles/{name}                       create / change a profile: site, base_url,
                                                             keys | add_keys, remove_key_ids
    DELETE /runninghub/profiles/{name}                       remove a profile
    POST   /runninghub/profiles/{name}/test                  account status of every key of the profile
    GET    /runninghub/workflows/{workflow_id}/fields        overridable fields (?profile=&refresh=1)
    POST   /runninghub/workflows/{workflow_id}/check         which override entries do not fit
    POST   /runninghub/group/convert                         a prompt with its "Run on RunningHub" groups
                                                             replaced by RH Remote Group nodes (no network)

Rules every handler keeps:
- a key goes in (once, in a POST body) and never comes out: replies, logs and error texts
  carry only `…` + its last 4 characters, and a stored key is addressed by an opaque id;
  no reply depends on a stored key beyond that (adding a key already there is a no-op);
- a key is bound to the site it was entered for (client.credentials decides);
- input is validated before anything is written or sent, and answered 400 with a message;
- network work runs in a worker thread with short client timeouts and an overall deadline
  (`NETWORK_DEADLINE` seconds, or `RUNNINGHUB_ROUTE_TIMEOUT`), answered 504 when it passes.
Every route is registered behind host_guard: a request addressed to a host name that is not
this machine's (DNS rebinding) is answered 403 before any handler runs.
Errors are `{"error": message, "error_type": name, "code": RunningHub code or null}`: 400 bad
input or a refused profile change (site change with keys, address not allowed, too many keys), 403
host not allowed, 404 unknown profile or workflow, 409 no usable key (none configured, unknown profile
name, damaged credentials file), 502 RunningHub refused or failed, 504 deadline passed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from typing import Any, Awaitable, Callable

from ..client.api import RunningHubClient
from ..client.credentials import (DEFAULT_PROFILE, ENV_BASE_URL, Account, CredentialsStore, account_from_environment,
                                  key_id, resolve_account, validate_profile_name)
from ..client.errors import (CredentialsError, InvalidNodeInfoError, ProfileChangeRefused, RunningHubError,
                             TransportError, WorkflowNotFoundError)
from ..client.overrides import NodeOverride, check_overrides, coerce_text_values, describe_workflow_fields
from ..client.redact import redact_key, scrub
from ..client.sites import SITES, resolve_site
from ..client.transport import RetryPolicy, Timeouts
from ..remote.run import remote_workflow
from . import accounts, comfy, host_guard, prompt_guard
from .task_panel import TASK_ROUTES

log = logging.getLogger("runninghub_bridge.routes")

PREFIX = "/runninghub"
NETWORK_DEADLINE = 25.0  # seconds for the whole network work of one request
ENV_ROUTE_TIMEOUT = "RUNNINGHUB_ROUTE_TIMEOUT"
ROUTE_TIMEOUTS = Timeouts(connect=5.0, read=15.0, upload_read=15.0, deadline=20.0)
ROUTE_RETRY = RetryPolicy(attempts=2, base_delay=0.3, max_delay=2.0, max_retry_after=3.0)
MAX_BODY_BYTES = 256 * 1024
MAX_PROMPT_BYTES = 32 * 1024 * 1024  # a whole API prompt (group/convert)
MAX_GROUPS = 64
MAX_OVERRIDES = 500
_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_KEY_CHARS = re.compile(r"^[\x21-\x7e]{8,256}$")  # printable ASCII, no spaces
_KEY_ID = re.compile(r"^k[0-9a-f]{20}$")
_RUNNINGHUB_KEY = re.compile(r"^[0-9a-fA-F]{32}$")
_SITE_CHOICES = ("cn", "ai", "custom")



class BadRequest(ValueError):
    """Invalid input from the caller: answered 400 with this message."""


# --------------------------------------------------------------------------- helpers


def _json(data: Any, status: int = 200):
    from aiohttp import web

    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)


def _error(message: str, status: int, *, error_type: str = "BadRequest", code: Any = None):
    return _json({"error": message, "error_type": error_type, "code": code}, status)


def _status_for(exc: BaseException) -> int:
    if isinstance(exc, RouteTimeout):
        return 504
    if isinstance(exc, (BadRequest, ProfileChangeRefused)):
        return 400
    if isinstance(exc, CredentialsError):  # no key configured, unknown profile, damaged file
        return 409
    if isinstance(exc, WorkflowNotFoundError):
        return 404
    if isinstance(exc, (RunningHubError, TransportError)):
        return 502
    return 500


def _route_error(exc: BaseException, keys: tuple[str, ...] = ()):
    """The error reply for `exc`, its text scrubbed of every key we know of."""
    message = scrub(str(exc) or type(exc).__name__, keys + _known_keys())
    status = _status_for(exc)
    if status == 500:
        log.exception("RunningHub route failed: %s", message)
        message = f"Internal error in the RunningHub pack: {message}"
    return _error(message, status, error_type=type(exc).__name__, code=getattr(exc, "code", None))


def _known_keys() -> tuple[str, ...]:
    """Every key the server holds (file and environment), for scrubbing texts."""
    keys: list[str] = []
    try:
        store = accounts.credentials_store()
        if store is not None:
            for entry in store.profiles().values():
                keys.extend(k for k in entry.get("keys") or [] if isinstance(k, str))
    except Exception:  # noqa: BLE001 - scrubbing must never fail a reply
        pass
    env = account_from_environment()
    if env is not None:
        keys.extend(k.secret for k in env.keys)
    return tuple(keys)


async def _read_json(request, limit: int = MAX_BODY_BYTES) -> dict:
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(f"Request body too large (over {limit // 1024} KB).")
    raw = await request.read()
    if len(raw) > limit:
        raise BadRequest(f"Request body too large (over {limit // 1024} KB).")
    if not raw.strip():
        return {}
    import json

    try:  # off the event loop: a body of up to MAX_PROMPT_BYTES takes a while to parse
        body = await asyncio.to_thread(json.loads, raw) if len(raw) > 64 * 1024 else json.loads(raw)
    except ValueError:
        raise BadRequest("The request body is not valid JSON.") from None
    except RecursionError:
        raise BadRequest("The request body is nested too deeply to be a ComfyUI prompt.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _only(body: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(f"Unknown field(s) {', '.join(unknown)}; expected some of: {', '.join(allowed)}.")


def _profile_name(raw: str) -> str:
    try:
        return validate_profile_name(raw)
    except CredentialsError as exc:
        raise BadRequest(str(exc)) from None


def _workflow_id(raw: str) -> str:
    value = (raw or "").strip()
    if not _WORKFLOW_ID.match(value):
        raise BadRequest(f"Invalid workflow id {value[:80]!r}: use the number in the workflow's URL "
                         "(letters, digits, '_' or '-', at most 64 characters).")
    return value


def _key_list(body: dict, field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise BadRequest(f"'{field}' must be a list of keys (strings).")
    keys = [k.strip() for k in value if k.strip()]
    for k in keys:
        if not _KEY_CHARS.match(k):
            # Never echo the value: it may be a real key with a typo.
            raise BadRequest(f"A key in '{field}' ({redact_key(k)}) is not a key: keys are 8 to 256 printable "
                             "characters without spaces. Paste it again.")
    return keys


def _site_view(entry_site: str | None, base_url: str | None) -> dict:
    """`{site: cn|ai|custom, base_url, host}` of a stored profile entry."""
    try:
        site = resolve_site(entry_site, base_url)
    except ValueError:
        return {"site": str(entry_site or "cn"), "base_url": base_url, "host": None}
    name = site.name if site.name in SITES else "custom"
    return {"site": name, "base_url": site.base_url if name == "custom" else None, "host": site.host}


def _profile_view(name: str, entry: dict, source: str = "credentials file") -> dict:
    """A stored profile as routes show it: each key only as its opaque id and `…last4`."""
    return {"name": name, "source": source, **_site_view(entry.get("site"), entry.get("base_url")),
            "keys": [_key_view(name, k) for k in entry.get("keys") or [] if isinstance(k, str)]}


def _key_view(profile: str, secret: str) -> dict:
    return {"id": key_id(profile, secret), "hint": redact_key(secret)}


def _store() -> CredentialsStore:
    store = accounts.credentials_store()
    if store is None:  # pragma: no cover - credentials_path() always gives a path
        raise CredentialsError("No credentials file location is known.")
    return store


def _route_client(account: Account, key_index: int = 0) -> RunningHubClient:
    """A client whose timeouts are shorter than a run's (a route answers a person waiting)."""
    transport = accounts.transport_for(account.site, timeouts=ROUTE_TIMEOUTS, retry=ROUTE_RETRY)
    return RunningHubClient(account.site, account.keys[key_index], transport=transport)


def network_deadline() -> float:
    import os

    try:
        value = float(os.environ.get(ENV_ROUTE_TIMEOUT) or NETWORK_DEADLINE)
    except ValueError:
        value = NETWORK_DEADLINE
    return min(max(value, 0.5), 300.0)


async def _network(func: Callable[..., Any], *args: Any) -> Any:
    """Blocking network work in a worker thread, within the route deadline. (On timeout the
    thread finishes on its own, bounded by the client's own timeouts.)"""
    deadline = network_deadline()
    try:
        return await asyncio.wait_for(asyncio.to_thread(func, *args), timeout=deadline)
    except asyncio.TimeoutError:
        raise RouteTimeout(f"RunningHub did not answer within {deadline:g} s; check the connection "
                           "and the site, then try again.") from None


async def _remote_workflow(account: Account, workflow_id: str, *, max_age: float = 300.0):
    """(the workflow's API format, None), or (None, the error reply, scrubbed of the account's keys)."""
    try:
        client = _route_client(account)
        return await _network(lambda: remote_workflow(client, workflow_id, max_age=max_age)), None
    except Exception as exc:  # noqa: BLE001
        return None, _route_error(exc, tuple(k.secret for k in account.keys))


class RouteTimeout(RunningHubError):
    pass


def _account(profile: str | None) -> Account:
    name = _profile_name(profile or DEFAULT_PROFILE)
    return resolve_account(name, accounts.credentials_store())


# --------------------------------------------------------------------------- handlers


async def get_profiles(request):
    try:
        entries = await asyncio.to_thread(lambda: _store().profiles())
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc)
    profiles = [_profile_view(name, entry) for name, entry in entries.items() if isinstance(entry, dict)]
    profiles.sort(key=lambda p: (p["name"] != DEFAULT_PROFILE, p["name"].lower()))
    env = account_from_environment()
    environment = None
    if env is not None:
        environment = {"name": DEFAULT_PROFILE, "source": "environment",
                       **_site_view(env.site.name if env.site.name in SITES else env.site.base_url, None),
                       "keys": [k.hint for k in env.keys],
                       "used": DEFAULT_PROFILE not in entries}
    import os

    return _json({
        "profiles": profiles,
        "environment": environment,
        "base_url_override": os.environ.get(ENV_BASE_URL) or None,
        "sites": {name: site.base_url for name, site in SITES.items()},
        "credentials_file": str(_store().path),
    })


async def post_profile(request):
    try:
        name = _profile_name(request.match_info.get("name", ""))
        body = await _read_json(request)
        _only(body, ("site", "base_url", "keys", "add_keys", "remove_key_ids"))
        site = _requested_site(body)
        keys = _key_list(body, "keys")
        add_keys = _key_list(body, "add_keys")
        remove_ids = _id_list(body, "remove_key_ids")
        if keys is not None and add_keys is not None:
            raise BadRequest("Send either 'keys' (replace the pool) or 'add_keys', not both.")
        if site is None and keys is None and add_keys is None and not remove_ids:
            raise BadRequest("Nothing to change: send 'site', 'keys', 'add_keys' or 'remove_key_ids'.")
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc)

    def change() -> tuple[dict, list[str]]:
        store = _store()
        unknown = store.set_profile(name, site=site, keys=keys, add_keys=add_keys, remove_key_ids=remove_ids)
        return store.profiles()[name], unknown

    try:
        entry, unknown = await asyncio.to_thread(change)
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc, tuple((keys or []) + (add_keys or [])))
    view = _profile_view(name, entry)
    warnings = [f"Key {redact_key(k)} does not look like a RunningHub key (32 hexadecimal characters); "
                "use Test to check it." for k in dict.fromkeys((keys or []) + (add_keys or []))
                if not _RUNNINGHUB_KEY.match(k)]
    warnings += [f"Profile '{name}' has no key with id {i}: the settings were out of date; they show the keys "
                 "now stored." for i in unknown]
    hints = ", ".join(k["hint"] for k in view["keys"]) or "none"
    log.info("RunningHub profile '%s' saved: site %s, keys %s", name, view["host"], hints)
    return _json({"profile": view, "warnings": warnings})


def _requested_site(body: dict) -> str | None:
    """The `site` of a profile change as the store takes it: cn, ai or the custom base URL
    (which the store accepts only where the server owner allowed it)."""
    site, base_url = body.get("site"), body.get("base_url")
    if site is not None and (not isinstance(site, str) or site not in _SITE_CHOICES):
        raise BadRequest(f"'site' must be one of {', '.join(_SITE_CHOICES)}.")
    if base_url is not None and not isinstance(base_url, str):
        raise BadRequest("'base_url' must be a string (http(s)://host[:port]).")
    base_url = (base_url or "").strip() or None
    if site != "custom":
        if base_url is not None:
            raise BadRequest("'base_url' goes with site 'custom' only.")
        return site
    if not base_url:
        raise BadRequest("A custom site needs 'base_url' (http(s)://host[:port]).")
    try:
        return resolve_site(base_url=base_url).base_url
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _id_list(body: dict, field: str) -> list[str]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, str) and _KEY_ID.match(i) for i in value):
        raise BadRequest(f"'{field}' must be a list of key ids, as GET /runninghub/profiles lists them.")
    return value


async def delete_profile(request):
    try:
        name = _profile_name(request.match_info.get("name", ""))
        existed = await asyncio.to_thread(lambda: _store().delete_profile(name))
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc)
    if not existed:
        return _error(f"There is no profile '{name}' in the credentials file.", 404, error_type="NotFound")
    log.info("RunningHub profile '%s' deleted", name)
    return _json({"deleted": name})


async def test_profile(request):
    try:
        name = _profile_name(request.match_info.get("name", ""))
        account = await asyncio.to_thread(_account, name)
    except ProfileChangeRefused as exc:  # it exists, but points where its keys may not go
        return _route_error(exc)
    except CredentialsError as exc:
        return _error(scrub(str(exc), _known_keys()), 404, error_type=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc)
    secrets = tuple(k.secret for k in account.keys)

    async def one(index: int) -> dict:
        key = account.keys[index]
        try:
            status = await _network(_route_client(account, index).account_status)
        except Exception as exc:  # noqa: BLE001 - reported per key
            if not isinstance(exc, RunningHubError):
                log.exception("account status for %s failed", key.hint)
            return {"key": key.hint, "id": _key_id_of(account, key), "ok": False,
                    "error": scrub(str(exc) or type(exc).__name__, secrets),
                    "error_type": type(exc).__name__, "code": getattr(exc, "code", None)}
        return {"key": key.hint, "id": _key_id_of(account, key), "ok": True, "coins": status.remain_coins, "running_tasks": status.current_task_counts,
                "money": status.remain_money, "currency": status.currency, "api_type": status.api_type}

    results = await asyncio.gather(*(one(i) for i in range(len(account.keys))))
    site = account.site
    return _json({
        "ok": all(r["ok"] for r in results),
        "profile": account.profile,
        "source": account.source,
        "site": site.name if site.name in SITES else "custom",
        "host": site.host,
        "base_url": site.base_url,
        "keys": results,
    })


def _key_id_of(account: Account, key) -> str | None:
    """The key's id for the settings dialog; none for environment keys (routes cannot change them)."""
    return key_id(account.profile, key.secret) if account.source == "credentials file" else None


async def get_workflow_fields(request):
    try:
        workflow_id = _workflow_id(request.match_info.get("workflow_id", ""))
        profile = request.query.get("profile") or DEFAULT_PROFILE
        refresh = request.query.get("refresh", "") in ("1", "true", "yes")
        account = await asyncio.to_thread(_account, profile)
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc)
    workflow, error = await _remote_workflow(account, workflow_id, max_age=0.0 if refresh else 300.0)
    if error is not None:
        return error
    rows = describe_workflow_fields(workflow)
    order = {node_id: i for i, node_id in enumerate(sorted({r["nodeId"] for r in rows}, key=_natural))}
    rows.sort(key=lambda r: order[r["nodeId"]])  # stable: fields keep their order inside a node
    return _json({"workflow_id": workflow_id, "profile": account.profile, "host": account.site.host,
                  "nodes": len([n for n in workflow.values() if isinstance(n, dict)]), "fields": rows})


def _natural(node_id: str) -> tuple:
    """'57:23' after '57', '10' after '9'."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in node_id.split(":"))


async def post_check(request):
    try:
        workflow_id = _workflow_id(request.match_info.get("workflow_id", ""))
        body = await _read_json(request)
        _only(body, ("profile", "overrides"))
        profile = body.get("profile") or DEFAULT_PROFILE
        if not isinstance(profile, str):
            raise BadRequest("'profile' must be a profile name.")
        entries = body.get("overrides")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise BadRequest("'overrides' must be a list of {nodeId, fieldName, value, text} objects.")
        if len(entries) > MAX_OVERRIDES:
            raise BadRequest(f"At most {MAX_OVERRIDES} overrides per check.")
        account = await asyncio.to_thread(_account, profile)
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc)
    workflow, error = await _remote_workflow(account, workflow_id)
    if error is not None:
        return error
    results = [_check_entry(workflow, workflow_id, i, e) for i, e in enumerate(entries)]
    bad = [{k: r[k] for k in ("index", "nodeId", "fieldName", "reason")} for r in results if not r["ok"]]
    return _json({"workflow_id": workflow_id, "ok": not bad, "checked": len(entries), "bad": bad,
                  "entries": results})


def _check_entry(workflow: dict, workflow_id: str, index: int, entry: dict) -> dict:
    """`{index, nodeId, fieldName, ok, reason, classType, title, valueType}` for one entry."""
    node_id = str(entry.get("nodeId") if entry.get("nodeId") is not None else "").strip()
    field = str(entry.get("fieldName") if entry.get("fieldName") is not None else "").strip()
    node = workflow.get(node_id) if node_id else None
    node = node if isinstance(node, dict) else None
    current = (node.get("inputs") or {}).get(field) if node else None
    result = {"index": index, "nodeId": node_id, "fieldName": field, "ok": True, "reason": None,
              "classType": node.get("class_type") if node else None,
              "title": ((node.get("_meta") or {}).get("title") or node.get("class_type")) if node else None,
              "valueType": type(current).__name__ if current is not None else None}

    def bad(reason: str) -> dict:
        result.update(ok=False, reason=reason)
        return result

    if not node_id:
        return bad("node_id is empty")
    if not field:
        return bad("field_name is empty")
    value = entry.get("value")
    from_text = bool(entry.get("text"))
    if value is not None and not isinstance(value, (bool, int, float, str)):
        return bad("the value must be a number, text or a boolean")
    override = NodeOverride(node_id, field, "" if value is None else value, from_text=from_text)
    try:
        check_overrides(workflow, [override], workflow_id=workflow_id)
        if from_text and value is not None:
            coerce_text_values(workflow, [override])
    except InvalidNodeInfoError as exc:
        return bad(exc.bad[0].reason if exc.bad else str(exc))
    return result


async def post_group_convert(request):
    """`{prompt, groups: [{title, node_ids, account}]}` → `{prompt, groups: [{title, node_id, inputs,
    outputs}]}` (remote/group_prompt.py), or 400 naming every link that may not cross a group's
    border and its type. Sends nothing anywhere: the group runs when RH Remote Group executes."""
    from ..remote.group_prompt import GroupError, GroupRequest, convert

    try:
        body = await _read_json(request, MAX_PROMPT_BYTES)
        _only(body, ("prompt", "groups"))
        prompt, groups = body.get("prompt"), body.get("groups")
        if not isinstance(prompt, dict) or not prompt:
            raise BadRequest("'prompt' must be the API-format prompt (an object of nodes).")
        if not isinstance(groups, list) or not 0 < len(groups) <= MAX_GROUPS:
            raise BadRequest(f"'groups' must be a list of 1 to {MAX_GROUPS} {{title, node_ids, account}} objects.")
        requests = [GroupRequest.parse(g, i) for i, g in enumerate(groups)]
        for r in requests:
            _profile_name(r.account)
        converted = await asyncio.to_thread(convert, prompt, requests, comfy.output_types)
    except GroupError as exc:
        return _error(str(exc), 400, error_type="GroupError")
    except Exception as exc:  # noqa: BLE001
        return _route_error(exc)
    return _json({"prompt": converted.prompt, "groups": converted.groups})


# --------------------------------------------------------------------------- registration

Handler = Callable[[Any], Awaitable[Any]]
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", f"{PREFIX}/profiles", get_profiles),
    ("POST", f"{PREFIX}/profiles/{{name}}", post_profile),
    ("DELETE", f"{PREFIX}/profiles/{{name}}", delete_profile),
    ("POST", f"{PREFIX}/profiles/{{name}}/test", test_profile),
    ("GET", f"{PREFIX}/workflows/{{workflow_id}}/fields", get_workflow_fields),
    ("POST", f"{PREFIX}/workflows/{{workflow_id}}/check", post_check),
    ("POST", f"{PREFIX}/group/convert", post_group_convert),
    *TASK_ROUTES,
]
_MARK = "_runninghub_bridge_routes"


def _host_refused(message: str, status: int):
    log.warning("%s", message)
    return _error(message, status, error_type="HostNotAllowed" if status == 403 else "UnsupportedMediaType")



def register_routes(server: Any = None) -> bool:
    """Add the routes, and the middleware that refuses the pack's nodes in a prompt queued by
    another web page (prompt_guard), to ComfyUI's PromptServer (once). False when there is
    no server (e.g. the pack imported by a script), or when ComfyUI has already frozen its routes."""
    if server is None:
        server_module = sys.modules.get("server")  # ComfyUI's own module; never imported from here
        prompt_server = getattr(server_module, "PromptServer", None)
        server = getattr(prompt_server, "instance", None)
    if server is None:
        return False
    if getattr(server, _MARK, False):
        return True
    app = getattr(server, "app", None)
    if app is not None and app.router.frozen:
        log.warning("RunningHub routes not registered: ComfyUI's web server had already started.")
        return False
    for method, path, handler in ROUTES:
        server.routes.route(method, path)(host_guard.guarded(handler, _host_refused))
    if app is not None:
        app.middlewares.append(prompt_guard.middleware())
    setattr(server, _MARK, True)
    log.debug("RunningHub routes registered under %s", PREFIX)
    return True
