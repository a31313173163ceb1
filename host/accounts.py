"""Profile name → its key pool (one per site and key set for the whole process), with one
pooled transport per site."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from ..client.api import RunningHubClient
from ..client.credentials import Account, ApiKey, CredentialsStore, resolve_account
from ..client.pool import ENV_KEY_CONCURRENCY, KeyPool, key_concurrency_from, shared_pool
from ..client.sites import Site
from ..client.transport import RetryPolicy, Timeouts, Transport
from . import comfy

MAX_TRANSPORTS = 8  # sites x policies kept open; a normal setup uses 2 (runs and routes) per site
_transports: OrderedDict[tuple, Transport] = OrderedDict()  # least recently used first
_lock = threading.Lock()


def credentials_store() -> CredentialsStore:
    return CredentialsStore.from_environment(comfy.credentials_path())


def account_for(profile: str | None) -> Account:
    return resolve_account(profile, credentials_store())


def transport_for(site: Site, *, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None) -> Transport:
    """One pooled transport per site and policy for the process (the routes use shorter
    timeouts). At most MAX_TRANSPORTS are kept: the least recently used one is dropped and
    its sockets closed, so many base URLs over a long session hold no sockets forever. (A
    client still holding a dropped transport keeps working: its session opens a new
    connection when it needs one.)"""
    cache_key = (site.base_url, timeouts, retry)
    with _lock:
        transport = _transports.get(cache_key)
        if transport is None:
            transport = _transports[cache_key] = Transport(site, timeouts=timeouts, retry=retry)
        _transports.move_to_end(cache_key)
        evicted = [_transports.popitem(last=False)[1] for _ in range(len(_transports) - MAX_TRANSPORTS)]
    for old in evicted:
        old.session.close()
    return transport


def key_concurrency() -> int:
    """Slots per key: RUNNINGHUB_KEY_CONCURRENCY, default client.pool.DEFAULT_KEY_CONCURRENCY."""
    return key_concurrency_from(os.environ.get(ENV_KEY_CONCURRENCY))


def pool_for(account: Account) -> KeyPool:
    """The process-wide scheduler for the account's keys: new tasks go through it."""
    transport = transport_for(account.site)

    def make_client(key: ApiKey) -> RunningHubClient:
        return RunningHubClient(account.site, key, transport=transport)

    return shared_pool(account.site, account.keys, client_factory=make_client, concurrency=key_concurrency())


def client_for(account: Account) -> RunningHubClient:
    """A client for calls that create no task (uploads, workflow JSON): the pool's first usable key."""
    return pool_for(account).client()


def client_for_task(account: Account, task_id: str, key_hint: str | None = None) -> RunningHubClient:
    """The client of the key that created `task_id` (outputs, status and cancel must use it);
    `key_hint` (its last 4, from the task ledger) picks it without asking RunningHub."""
    return pool_for(account).client_for_task(task_id, key_hint=key_hint)
