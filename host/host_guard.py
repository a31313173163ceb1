"""Refuses pack routes reached by anything but ComfyUI's own page (or a script).

Three checks, in `guarded`, before every pack route:

- **Host (DNS rebinding).** A web page on `evil.example` can make its name resolve to
  127.0.0.1 after loading; its requests then carry `Host` and `Origin`
  `evil.example:PORT`, which ComfyUI's origin check lets through, and the page can read the
  replies. Such a name is not loopback, not an IP literal and not `localhost`, so the pack's
  routes (credentials, key tests, anything that spends money) answer 403 for it unless the
  server's owner listed it in `RUNNINGHUB_ALLOWED_HOSTS` (comma-separated; for a LAN name
  or a reverse proxy).
- **Origin (cross-site requests).** A browser names the page that sent a request in
  `Origin` (every POST and DELETE) and says where it came from in `Sec-Fetch-Site`.
  ComfyUI checks `Origin` only when `Host` is a loopback name, and lets `Origin: null` (a
  sandboxed frame, a local file) through; so a page could post to `0.0.0.0:8188`,
  `[::ffff:7f00:1]:8188`, a LAN address, or from a sandboxed frame. A request whose
  `Origin` is not the address it was sent to (same name, and the same port when `Host`
  has one), or is `null`, or that a browser marks cross-site or same-site, answers 403
  (an `Origin` name listed in `RUNNINGHUB_ALLOWED_HOSTS` passes). Scripts send neither
  header and pass.
- **JSON only.** A request with a body must say `Content-Type: application/json` (415
  otherwise): a page can send `text/plain`, form or multipart bodies without the browser
  asking the server first, but not JSON.
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


def _port(netloc_port: str | None, scheme: str) -> str:
    return netloc_port or {"http": "80", "https": "443"}.get(scheme, "")


def origin_refusal(origin: str | None, fetch_site: str | None, host_header: str | None) -> str | None:
    """None when the request came from the page it was sent to (or from a script); else
    the 403 message."""
    if origin is None:
        if (fetch_site or "").lower() in ("cross-site", "same-site"):
            return _from_elsewhere("another web page")
        return None
    if origin.strip().lower() == "null":
        return _from_elsewhere("a page without an address (a sandboxed frame or a local file)")
    try:
        sent_from, sent_to = urlsplit(origin.strip()), urlsplit("//" + (host_header or ""))
        origin_name, origin_port = host_name(sent_from.netloc), _port(str(sent_from.port or ""), sent_from.scheme)
        host_port = str(sent_to.port or "")
    except ValueError:
        return _from_elsewhere(f"the page at {origin[:80]}")
    if origin_name in allowed_hosts() - _ALWAYS:
        return None
    if origin_name == host_name(host_header) and (not host_port or host_port == origin_port):
        return None
    return _from_elsewhere(f"the page at {origin[:80]}", origin_name if origin_name != host_name(host_header) else "")


def _from_elsewhere(page: str, name: str = "") -> str:
    hint = (f" If you open ComfyUI through that address yourself, start ComfyUI with {ENV_ALLOWED_HOSTS}={name}."
            if name else "")
    return (f"RunningHub Bridge refused this request: it came from {page}, not from ComfyUI's own page. Another "
            "web page must not change your RunningHub keys or spend your coins." + hint)


def body_refusal(method: str, content_type: str | None, has_body: bool) -> str | None:
    """None when the request has no body or a JSON one; else the 415 message."""
    if method.upper() in ("GET", "HEAD", "OPTIONS") or (not has_body and not content_type):
        return None
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json":
        return None
    return (f"RunningHub Bridge accepts this request only with a JSON body (Content-Type: application/json), as "
            f"its own page sends it; got {media or 'no Content-Type'}.")


def guarded(handler: Handler, reply: Callable[[str, int], Any]) -> Handler:
    """`handler`, answering `reply(message, status)` instead for a refused `Host` or
    `Origin` (403) or a body that is not JSON (415)."""

    @functools.wraps(handler)
    async def check_first(request):
        headers = request.headers
        message = refusal(headers.get("Host")) or origin_refusal(headers.get("Origin"), headers.get("Sec-Fetch-Site"),
                                                                  headers.get("Host"))
        if message is not None:
            return reply(message, 403)
        has_body = bool(request.content_length) or "chunked" in headers.get("Transfer-Encoding", "").lower()
        message = body_refusal(request.method, headers.get("Content-Type"), has_body)
        if message is not None:
            return reply(message, 415)
        return await handler(request)

    return check_first
