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
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import CredentialsError
from .redact import redact_key
from .sites import Site, resolve_site

ENV_KEY = "RUNNINGHUB_API_KEY"
ENV_SITE = "RUNNINGHUB_SITE"
ENV_BASE_URL = "RUNNINGHUB_BASE_URL"
ENV_CREDENTIALS_FILE = "RUNNINGHUB_CREDENTIALS_FILE"
DEFAULT_PROFILE = "default"
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
        base_url = os.environ.get(ENV_BASE_URL) or entry.get("base_url")
        site = resolve_site(entry.get("site"), base_url)
        return Account(profile=name, site=site, keys=keys, source="credentials file")

    def set_profile(self, name: str, *, site: str | None = None, keys: list[str] | None = None,
                    add_keys: list[str] | None = None, remove_key_hints: list[str] | None = None,
                    base_url: str | None = None) -> None:
        """Create or change a profile. `keys` replaces the pool, `add_keys` extends it,
        `remove_key_hints` removes keys by their `…abcd` hint or last 4 characters."""
        name = validate_profile_name(name)
        if site is not None:
            resolve_site(site)  # validates
        if base_url:
            resolve_site(base_url=base_url)
        with self._lock:
            data = self._read()
            entry = dict(data["profiles"].get(name) or {"site": "cn", "keys": []})
            if site is not None:
                entry["site"] = site
            if base_url is not None:
                entry["base_url"] = base_url or None
            pool = list(entry.get("keys") or [])
            if keys is not None:
                pool = [ApiKey(k).secret for k in keys]
            for k in add_keys or []:
                secret = ApiKey(k).secret
                if secret not in pool:
                    pool.append(secret)
            for hint in remove_key_hints or []:
                tail = hint.lstrip("…").strip()
                pool = [k for k in pool if not (tail and k.endswith(tail))]
            entry["keys"] = pool
            data["profiles"][name] = entry
            data["version"] = _FILE_VERSION
            self._write(data)

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
