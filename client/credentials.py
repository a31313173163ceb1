"""Where keys come from: the credentials file (named profiles) or the environment.

A node holds at most a profile *name*; the key itself stays on the server side.

Lookup for a profile name:
  1. the profile of that name in the credentials file (written by the pack's settings
     route, mode 0600, under ComfyUI's user folder; `RUNNINGHUB_CREDENTIALS_FILE` overrides
     the path);
  2. for the profile `default` only: the environment, `RUNNINGHUB_API_KEY` (one key or a
     comma-separated pool) with `RUNNINGHUB_SITE` (`cn` default, `ai`).
`RUNNINGHUB_BASE_URL`, when set, replaces the site's URL for every profile (a proxy, or
the local simulator in tests).
A profile with several keys is a key pool.

A key is bound to the site it was entered for: a profile's site cannot change while it
holds keys entered for the old one (its keys are only ever sent where they were entered),
and a custom address is used only when the server owner allowed it in the environment
(`RUNNINGHUB_BASE_URL`, or `RUNNINGHUB_ALLOWED_BASE_URLS`), never because a route asked.
Keys are addressed by an opaque id (`key_id`), never by a part of the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .errors import CredentialsError, ProfileChangeRefused
from .redact import redact_key, remember_secret
from .sites import Site, resolve_site

ENV_KEY = "RUNNINGHUB_API_KEY"
ENV_SITE = "RUNNINGHUB_SITE"
ENV_BASE_URL = "RUNNINGHUB_BASE_URL"
ENV_CREDENTIALS_FILE = "RUNNINGHUB_CREDENTIALS_FILE"
ENV_ALLOWED_BASE_URLS = "RUNNINGHUB_ALLOWED_BASE_URLS"
DEFAULT_PROFILE = "default"
MAX_KEYS = 50  # per profile, counted over the stored pool
_ID_SALT = secrets.token_bytes(32)  # never leaves the process: ids say nothing about keys
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
_FILE_VERSION = 1


class ApiKey:
    """A key that cannot leak by accident: its repr and str are redacted."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str):
        secret = (secret or "").strip()
        if not secret:
            raise CredentialsError("An empty RunningHub API key was given.")
        if any(c.isspace() for c in secret):
            raise CredentialsError(f"The RunningHub API key {redact_key(secret)} contains spaces: paste it again.")
        remember_secret(secret)
        self._secret = secret

    @property
    def secret(self) -> str:
        return self._secret

    @property
    def hint(self) -> str:
        return redact_key(self._secret)

    def __repr__(self) -> str:
        return f"ApiKey({self.hint})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)


@dataclass(frozen=True)
class Account:
    """What a profile resolves to: a site and one or more keys (a pool)."""

    profile: str
    site: Site
    keys: tuple[ApiKey, ...]
    source: str  # "credentials file" or "environment", for messages

    def describe(self) -> str:
        hints = ", ".join(k.hint for k in self.keys)
        return f"profile '{self.profile}' ({self.source}; {self.site.host}; keys {hints})"


def parse_key_list(text: str) -> list[ApiKey]:
    return [ApiKey(part) for part in re.split(r"[,\s;]+", text or "") if part.strip()]


def key_id(profile: str, secret: str) -> str:
    """The opaque id by which routes and the settings dialog address a stored key: a keyed
    hash whose salt is made anew by each process, so an id reveals nothing about the key
    and no part of a key ever selects anything."""
    digest = hmac.new(_ID_SALT, f"{profile}\0{secret}".encode(), hashlib.sha256).hexdigest()
    return "k" + digest[:20]


def allowed_base_urls() -> frozenset[str]:
    """Custom addresses the server owner allowed: `RUNNINGHUB_BASE_URL` and the
    comma-separated `RUNNINGHUB_ALLOWED_BASE_URLS` (read at each use, never written by us)."""
    raw = [os.environ.get(ENV_BASE_URL, "")] + os.environ.get(ENV_ALLOWED_BASE_URLS, "").split(",")
    return frozenset(_normal_url(item) for item in raw if item.strip())


def _normal_url(url: str) -> str:
    parsed = urlparse(url.strip())
    return f"{parsed.scheme.lower()}://{parsed.netloc.lower()}{parsed.path.rstrip('/')}"


def require_allowed_address(site: Site, profile: str) -> Site:
    """`site`, when it is cn/ai or a custom address the owner allowed; else a CredentialsError
    that names the setting, so no key goes to an address someone else chose."""
    if site.name != "custom" or _normal_url(site.base_url) in allowed_base_urls():
        return site
    raise ProfileChangeRefused(
        f"Profile '{profile}' points at {site.base_url}, an address the ComfyUI server's owner has not allowed, "
        f"so its keys are not sent there. To allow it, start ComfyUI with {ENV_ALLOWED_BASE_URLS}={site.base_url} "
        f"(comma-separated) or {ENV_BASE_URL}; otherwise pick the site cn or ai for this profile.")


def validate_profile_name(name: str) -> str:
    name = (name or "").strip()
    if not _PROFILE_NAME.match(name):
        raise CredentialsError(f"Invalid profile name {name!r}: use letters, digits, space, '.', '_' or '-' "
                               "(at most 64 characters).")
    return name


class CredentialsStore:
    """The credentials file: `{"version": 1, "profiles": {name: {"site": ..., "keys": [...]}}}`.

    Written atomically with mode 0600. Never returns keys to callers that show things: use
    `summary()` for that.
    """

    _lock = threading.Lock()

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def from_environment(cls, default_path: str | os.PathLike | None) -> "CredentialsStore | None":
        path = os.environ.get(ENV_CREDENTIALS_FILE) or default_path
        return cls(path) if path else None

    def _read(self) -> dict:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": _FILE_VERSION, "profiles": {}}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise CredentialsError(f"The RunningHub credentials file {self.path} is not valid JSON ({exc.msg}); "
                                   "fix or delete it and add the key again in settings.") from None
        if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
            raise CredentialsError(f"The RunningHub credentials file {self.path} has an unknown layout; "
                                   "delete it and add the key again in settings.")
        for entry in data["profiles"].values():
            for key in (entry.get("keys") or []) if isinstance(entry, dict) else []:
                if isinstance(key, str):
                    remember_secret(key)  # scrubbed from network text from now on
        return data

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=str(self.path.parent))
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        os.chmod(self.path, 0o600)

    def profiles(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._read()["profiles"])

    def get(self, name: str) -> Account | None:
        entry = self.profiles().get(name)
        if entry is None:
            return None
        keys = tuple(ApiKey(k) for k in entry.get("keys") or [])
        if not keys:
            return None
        if os.environ.get(ENV_BASE_URL):
            site = resolve_site(base_url=os.environ[ENV_BASE_URL])
        else:
            site = require_allowed_address(_entry_site(entry), name)
        return Account(profile=name, site=site, keys=keys, source="credentials file")

    def set_profile(self, name: str, *, site: str | None = None, keys: list[str] | None = None,
                    add_keys: list[str] | None = None, remove_key_ids: list[str] | None = None) -> list[str]:
        """Create or change a profile: `site` is cn, ai or an allowed base URL; `keys` replaces
        the pool, `add_keys` extends it (a key already there is left as it is), `remove_key_ids`
        removes keys by their `key_id`. Returns the ids that named no key of the profile.

        Refused (ProfileChangeRefused, nothing written) when the site would change while the
        profile keeps keys entered for the old one, or when the pool would exceed MAX_KEYS.
        The limit counts every key sent, present or not, so the answer never depends on
        which keys are stored."""
        name = validate_profile_name(name)
        new_site = require_allowed_address(resolve_site(site), name) if site is not None else None
        typed = [ApiKey(k).secret for k in (keys if keys is not None else add_keys) or []]
        with self._lock:
            data = self._read()
            entry = dict(data["profiles"].get(name) or {"site": "cn", "keys": []})
            stored = [k for k in entry.get("keys") or [] if isinstance(k, str)]
            pool, unknown = _without_ids(name, stored, remove_key_ids or [])
            if keys is not None:
                pool = []
            if len(pool) + len(typed) > MAX_KEYS:
                raise ProfileChangeRefused(f"At most {MAX_KEYS} keys per profile: profile '{name}' would hold "
                                           "more. Remove some first, or use another profile.")
            pool += [k for k in dict.fromkeys(typed) if k not in pool]
            if new_site is not None:
                _check_site_change(name, entry, new_site, [k for k in pool if k in stored and k not in typed])
                entry["site"] = new_site.name if new_site.name != "custom" else new_site.base_url
                entry["base_url"] = new_site.base_url if new_site.name == "custom" else None
            entry["keys"] = pool
            data["profiles"][name] = entry
            data["version"] = _FILE_VERSION
            self._write(data)
        return unknown

    def delete_profile(self, name: str) -> bool:
        with self._lock:
            data = self._read()
            existed = data["profiles"].pop(name, None) is not None
            if existed:
                self._write(data)
            return existed

    def summary(self) -> dict[str, dict]:
        """Profiles with redacted keys only: safe to return from a route or log."""
        out = {}
        for name, entry in self.profiles().items():
            out[name] = {"site": entry.get("site", "cn"), "base_url": entry.get("base_url"),
                         "keys": [redact_key(k) for k in entry.get("keys") or []]}
        return out


def _entry_site(entry: dict) -> Site:
    return resolve_site(entry.get("site"), entry.get("base_url"))


def _without_ids(profile: str, pool: list[str], ids: list[str]) -> tuple[list[str], list[str]]:
    """(the pool without the keys named by `ids`, the ids that named none of them)."""
    by_id = {key_id(profile, k): k for k in pool}
    gone = {by_id[i] for i in ids if i in by_id}
    return [k for k in pool if k not in gone], [i for i in ids if i not in by_id]


def _check_site_change(profile: str, entry: dict, new_site: Site, kept: list[str]) -> None:
    """Refuse to move keys entered for one site to another (the move would send them there)."""
    try:
        old_site = _entry_site(entry)
    except ValueError:
        old_site = None
    if not kept or (old_site is not None and old_site.base_url == new_site.base_url):
        return
    where = old_site.host if old_site is not None else "another site"
    raise ProfileChangeRefused(
        f"Profile '{profile}' holds {len(kept)} key(s) entered for {where}; a key is only ever sent to the "
        f"site it was entered for. To use the profile on {new_site.host}, remove its keys first or send them "
        "again with 'Replace keys' together with the new site, or use another profile.")


def account_from_environment(profile: str = DEFAULT_PROFILE) -> Account | None:
    raw = os.environ.get(ENV_KEY, "")
    if not raw.strip():
        return None
    keys = tuple(parse_key_list(raw))
    site = resolve_site(os.environ.get(ENV_SITE), os.environ.get(ENV_BASE_URL))
    return Account(profile=profile, site=site, keys=keys, source=f"environment {ENV_KEY}")


def resolve_account(profile: str | None, store: CredentialsStore | None) -> Account:
    """The account for a profile name, or a CredentialsError that says how to add one."""
    name = (profile or DEFAULT_PROFILE).strip() or DEFAULT_PROFILE
    if store is not None:
        account = store.get(name)
        if account is not None:
            return account
    if name == DEFAULT_PROFILE:
        account = account_from_environment(name)
        if account is not None:
            return account
        raise CredentialsError(
            "No RunningHub API key is configured. Add one in ComfyUI's settings (RunningHub → "
            f"API keys) or set the environment variable {ENV_KEY} before starting ComfyUI "
            f"(and {ENV_SITE}=ai if the key comes from runninghub.ai).")
    raise CredentialsError(
        f"The account profile '{name}' does not exist. Add it in ComfyUI's settings (RunningHub → "
        "API keys), or leave the node's account at 'default'.")
