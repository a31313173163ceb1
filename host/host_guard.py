"""Refuses pack routes reached under a host name that is not this machine's (DNS rebinding).

A web page on `evil.example` can make its name resolve to 127.0.0.1 after loading; its
requests then carry `Host` and `Origin` `evil.example:PORT`, which ComfyUI's origin check
lets through, and the page can read the replies. Such a name is not loopback, not an IP
literal and not `localhost`, so the pack's routes (credentials, key tests, anything that
spends money) answer 403 for it unless the server's owner listed it in
`RUNNINGHUB_ALLOWED_HOSTS` (comma-separated; for a LAN name or a reverse proxy).
"""

from __future__ import annotations

import functools
import ipaddress
import os
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

ENV_ALLOWED_HOSTS = "RUNNINGHUB_ALLOWED_HOSTS"
_ALWAYS = frozenset({"localhost"})

Handler = Callable[[Any], Awaitable[Any]]


def host_name(host_header: str | None) -> str:
    """The name of a `Host` header without port, brackets or trailing dot, in lower case."""
    try:
        name = urlsplit("//" + (host_header or "")).hostname or ""
    except ValueError:
        return ""
    return name.rstrip(".").lower()


def allowed_hosts() -> frozenset[str]:
    raw = os.environ.get(ENV_ALLOWED_HOSTS, "")
    return _ALWAYS | {host_name(item.strip()) for item in raw.split(",") if item.strip()}


def refusal(host_header: str | None) -> str | None:
    """None when the request may proceed; else the 403 message saying what to do."""
    name = host_name(host_header)
    if name in allowed_hosts():
        return None
    try:
        ipaddress.ip_address(name)
        return None  # an IP literal cannot be rebound
    except ValueError:
        pass
    shown = name or (host_header or "")[:80]
    return (f"RunningHub Bridge refused this request: it was addressed to the host name '{shown}', which is not "
            "this machine's address. A web page can reach ComfyUI under such a name (DNS rebinding) and use "
            "your keys. If you open ComfyUI under this name yourself, start ComfyUI with "
            f"{ENV_ALLOWED_HOSTS}={shown} (comma-separated names).")


def guarded(handler: Handler, reply: Callable[[str], Any]) -> Handler:
    """`handler`, answering `reply(message)` instead for a refused `Host`."""

    @functools.wraps(handler)
    async def check_host_first(request):
        message = refusal(request.headers.get("Host"))
        if message is not None:
            return reply(message)
        return await handler(request)

    return check_host_first
