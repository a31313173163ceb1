"""Uploading files, each identical file at most once per key and process.

RunningHub names an upload by its content (`api/<sha256>.<ext>`), so a file already sent
with this key on this site is not sent again.

Uploads for the key that runs: RH Upload sends a file with one key of the pool, but the
task may be created with another key, of another account, and RunningHub does not say
whether an upload is visible to other accounts. So the contents behind the names RH
Upload handed out are kept (`Uploads`, bounded by bytes), and the run node calls
`for_key(client, overrides)` just before create: every override naming a kept upload is
sent with that key too (once per key and content) and the overrides name what it answered.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from ..client.api import RunningHubClient
from ..client.overrides import NodeOverride

log = logging.getLogger("runninghub_bridge.remote")

_uploaded: dict[tuple[str, str, str], str] = {}
_lock = threading.Lock()
KEEP_BYTES = 512 * 1024 * 1024  # contents kept for uploads with other keys (the newest)


@dataclass(frozen=True)
class PendingUpload:
    data: bytes
    file_name: str  # a local name with the right extension, e.g. image_00001.png
    file_type: str  # image | video | audio
    content_type: str


def _cache_key(client: RunningHubClient, data: bytes) -> tuple[str, str, str]:
    return (client.site.base_url, hashlib.sha256(client.key.secret.encode()).hexdigest(),
            hashlib.sha256(data).hexdigest())


class KeptUploads:
    """The contents behind upload names, newest first kept, at most `max_bytes` in all."""

    def __init__(self, max_bytes: int = KEEP_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, PendingUpload] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, name: str, item: PendingUpload) -> None:
        with self._lock:
            old = self._items.pop(name, None)
            self._bytes -= len(old.data) if old else 0
            self._items[name] = item
            self._bytes += len(item.data)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.data)

    def get(self, name: Any) -> PendingUpload | None:
        if not isinstance(name, str):
            return None
        with self._lock:
            return self._items.get(name)


KEPT = KeptUploads()


def upload_once(client: RunningHubClient, item: PendingUpload) -> str:
    key = _cache_key(client, item.data)
    with _lock:
        known = _uploaded.get(key)
    if known is not None:
        log.info("%s already uploaded as %s; not sending it again", item.file_name, known)
        return known
    uploaded = client.upload(item.data, item.file_name, item.file_type, content_type=item.content_type)
    with _lock:
        _uploaded[key] = uploaded.file_name
    KEPT.keep(uploaded.file_name, item)
    return uploaded.file_name


def for_key(client: RunningHubClient, overrides: list[NodeOverride]) -> list[NodeOverride]:
    """`overrides` with every upload they name sent with `client`'s key too (once per key
    and content), named as that key's upload answered."""
    out = []
    for entry in overrides:
        item = KEPT.get(entry.value)
        out.append(entry if item is None else replace(entry, value=upload_once(client, item)))
    return out


def upload_all(client: RunningHubClient, items: list[PendingUpload], *, parallel: int = 4) -> list[str]:
    """Upload in parallel; names come back in input order. Identical files in one call are
    sent once. The first failure is raised."""
    unique: dict[str, PendingUpload] = {}
    for it in items:
        unique.setdefault(hashlib.sha256(it.data).hexdigest(), it)
    distinct = list(unique.values())
    if len(distinct) <= 1:
        names = [upload_once(client, it) for it in distinct]
    else:
        with ThreadPoolExecutor(max_workers=min(parallel, len(distinct)), thread_name_prefix="rh-upload") as pool:
            runs = [contextvars.copy_context() for _ in distinct]  # each carries the run's stop
            names = list(pool.map(lambda run, it: run.run(upload_once, client, it), runs, distinct))
    by_digest = dict(zip(unique.keys(), names))
    return [by_digest[hashlib.sha256(it.data).hexdigest()] for it in items]
