"""Profile name → a ready client, with one pooled transport per site for the process."""

from __future__ import annotations

import threading

from ..client.api import RunningHubClient
from ..client.credentials import Account, CredentialsStore, resolve_account
from ..client.transport import Transport
from ..client.sites import Site
from . import comfy

_transports: dict[str, Transport] = {}
_lock = threading.Lock()


def credentials_store() -> CredentialsStore:
    return CredentialsStore.from_environment(comfy.credentials_path())


def account_for(profile: str | None) -> Account:
    return resolve_account(profile, credentials_store())


def transport_for(site: Site) -> Transport:
    with _lock:
        transport = _transports.get(site.base_url)
        if transport is None:
            transport = _transports[site.base_url] = Transport(site)
        return transport


def client_for(account: Account, key_index: int = 0) -> RunningHubClient:
    return RunningHubClient(account.site, account.keys[key_index], transport=transport_for(account.site))
