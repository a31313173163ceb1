"""The output host: a second listener that serves result files, as RunningHub's storage/CDN
host does (`/rh-resource-models/<token>/output/<name>`), apart from the API host.

Like a CDN it answers `Range` requests (206), when `gzip_text_outputs` is on sends text
files gzip-encoded to clients that accept it, and when `redirect_outputs` is on answers the
published path with a 302 to the file's CDN path (`/cdn/<token>/<name>`, always served)."""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from urllib.parse import quote

from aiohttp import web

from .app import SimApp
from .bodies import read_body
from .replies import EXPIRED_XML, plain, send
from .storage import StoredFile

FILE_PATH_RE = re.compile(r"^/rh-resource-models/([0-9a-f]{32})/output/([^/]+)$")
CDN_PATH_RE = re.compile(r"^/cdn/([0-9a-f]{32})/([^/]+)$")
TEXT_TYPES = ("text/", "application/json")


def make_files_app(app: SimApp) -> web.Application:
    files = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await serve_file(request, app)

    files.router.add_route("*", "/{tail:.*}", handle)
    return files


def _live(app: SimApp, entry: StoredFile | None, name: str) -> bool:
    ttl = app.settings.url_ttl_seconds
    return (entry is not None and entry.name == name and not entry.expired
            and not (ttl > 0 and time.time() - entry.created > ttl) and entry.path.is_file())


async def serve_file(request: web.Request, app: SimApp) -> web.StreamResponse:
    await read_body(request)
    app.count("files", None)
    published = FILE_PATH_RE.match(request.path)
    match = published or CDN_PATH_RE.match(request.path)
    fault = app.faults.take("files")
    if fault is not None and not fault.commits:
        return await send(request, 404, b"", "application/xml", fault=fault)
    entry = app.storage.lookup(match.group(1)) if match else None
    if not _live(app, entry, match.group(2) if match else ""):
        return plain(404, EXPIRED_XML.encode(), "application/xml")
    if published and app.settings.redirect_outputs:
        return plain(302, b"", "text/plain", {"Location": f"{app.files_base_url}/cdn/{entry.token}/{quote(entry.name)}"})
    if request.method not in ("GET", "HEAD"):
        return plain(405, b"", "text/plain", {"Allow": "GET, HEAD"})
    data = await asyncio.to_thread(entry.path.read_bytes)
    headers = {"Cache-Control": "max-age=86400", "ETag": f'"{entry.token}"', "Accept-Ranges": "bytes",
               "Content-Disposition": f'inline; filename="{entry.name}"'}
    wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("Range", "").strip())
    if wanted and (wanted.group(1) or wanted.group(2)):
        return await _range(request, data, wanted, entry, headers, fault)
    if app.settings.gzip_text_outputs and entry.content_type.startswith(TEXT_TYPES):
        headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("Accept-Encoding", "").lower():
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
    return await send(request, 200, data, entry.content_type, headers, fault)


async def _range(request, data: bytes, wanted, entry: StoredFile, headers: dict, fault) -> web.StreamResponse:
    """`bytes=N-`, `bytes=N-M` or `bytes=-N`: 206 with that part, 416 past the end."""
    size = len(data)
    if wanted.group(1):
        start = int(wanted.group(1))
        end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
    else:
        start, end = max(0, size - int(wanted.group(2))), size - 1
    if start >= size or start > end:
        return plain(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return await send(request, 206, data[start:end + 1], entry.content_type, headers, fault)
