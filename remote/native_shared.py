"""One native-endpoint client (client/native.py) per site and key in this process."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from ..client.native import NativeClient

_shared: dict[tuple[str, str], NativeClient] = {}
_shared_lock = threading.Lock()


def shared_native(client: Any) -> NativeClient:
    """The native client of a pool key's client (one per site and key in this process)."""
    if isinstance(client, NativeClient):
        return client
    ident = (client.site.base_url, hashlib.sha256(client.key.secret.encode()).hexdigest())
    with _shared_lock:
        native = _shared.get(ident)
        if native is None:
            native = _shared[ident] = NativeClient(client.site, client.key)
        return native
