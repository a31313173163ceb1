"""Uploading files, each identical file at most once per account and process.

RunningHub names an upload by its content (`api/<sha256>.<ext>`), so a file already sent
with this key on this site is not sent again.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..client.api import RunningHubClient

log = logging.getLogger("runninghub_bridge.remote")

_uploaded: dict[tuple[str, str, str], str] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class PendingUpload:
    data: bytes
    file_name: str  # a local name with the right extension, e.g. image_00001.png
    file_type: str  # image | video | audio
    content_type: str


def _cache_key(client: RunningHubClient, data: bytes) -> tuple[str, str, str]:
    return (client.site.base_url, hashlib.sha256(client.key.secret.encode()).hexdigest(),
            hashlib.sha256(data).hexdigest())


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
    return uploaded.file_name


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
