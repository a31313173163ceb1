"""Reading request bodies: a size cap that drains the rest, JSON objects, multipart forms."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import TYPE_CHECKING

from . import protocol as P
from .protocol import ApiError

if TYPE_CHECKING:  # the account logic (app.py) uses the form helpers without aiohttp
    from aiohttp import web


async def read_body(request: "web.Request", limit: int | None = None) -> bytes | None:
    """The request body (chunked or not); None if it is longer than `limit`.

    An oversized body is still read to its end (and dropped), so the reply reaches a client
    that is still sending and the kept-alive connection stays usable."""
    chunks, total = [], 0
    while True:
        data = await request.content.read(1 << 20)
        if not data:
            break
        total += len(data)
        if limit is None or total <= limit:
            chunks.append(data)
    return b"".join(chunks) if limit is None or total <= limit else None


def bearer(request: "web.Request") -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def json_object(raw: bytes) -> dict:
    """A JSON object body ({} when empty); anything else is 301 PARAMS_INVALID."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(P.PARAMS_INVALID, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(P.PARAMS_INVALID, "request body must be a JSON object")
    return body


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """multipart/form-data as {field: (filename or None, bytes)}.

    Parsed from the whole body rather than streamed: uploads are capped (30 MB) before this
    runs, and a lenient parser accepts what hand-written clients send: bare LF line ends,
    unquoted names, and RFC 5987 `filename*=UTF-8''…`."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match:
        raise ApiError(P.PARAMS_INVALID, "multipart/form-data with a boundary is required")
    boundary = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        newline = b"\r\n" if part.startswith(b"\r\n") else b"\n"
        part = part[len(newline):] if part.startswith(newline) else part
        head, sep, content = part.partition(newline * 2)
        if not sep:
            continue
        if content.endswith(newline):
            content = content[:-len(newline)]
        headers = head.decode("utf-8", "replace").split(newline.decode())
        disposition = next((line for line in headers if line.lower().startswith("content-disposition")), "")
        name = _parameter(disposition, "name")
        if name is not None:
            fields[name] = (_filename(disposition), content)
    return fields


def _parameter(disposition: str, key: str) -> str | None:
    """A Content-Disposition parameter, quoted or not."""
    found = re.search(rf'(?:^|;)\s*{key}\s*=\s*(?:"([^"]*)"|([^;\s]+))', disposition, re.IGNORECASE)
    return None if found is None else found.group(1) if found.group(1) is not None else found.group(2)


def _filename(disposition: str) -> str | None:
    extended = re.search(r"(?:^|;)\s*filename\*\s*=\s*([^']*)'[^']*'([^;\s]+)", disposition, re.IGNORECASE)
    if extended:
        return urllib.parse.unquote(extended.group(2), encoding=extended.group(1) or "utf-8", errors="replace")
    return _parameter(disposition, "filename")


def form_text(fields: dict, name: str) -> str:
    """A multipart text field, stripped ("" when absent)."""
    return fields.get(name, (None, b""))[1].decode("utf-8", "replace").strip()
