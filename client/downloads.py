"""Downloads of output files: the URLs come from the network, so they are untrusted.

- only http(s); redirects followed by hand (at most 3) and each hop checked again;
- addresses on this machine or a private network are refused unless the account itself
  points at such a base URL (a local proxy, or the simulator in tests);
- streamed, with a size cap checked against Content-Length and while reading;
- connect/read timeouts and an overall deadline; a reset mid-body restarts the download
  (a bounded number of times) so the body is either whole or an error, never truncated.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import BinaryIO
from urllib.parse import urljoin, urlparse

import requests

from .errors import DownloadError
from .sites import Site
from .transport import RetryPolicy, Timeouts

log = logging.getLogger("runninghub_bridge.client")

DEFAULT_MAX_BYTES = 2 * 1024 ** 3  # 2 GiB: a long video; images are capped lower by callers
_CHUNK = 1024 * 1024


def _is_local_address(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False  # resolution fails later with a clear connection error
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_reserved or addr.is_unspecified:
            return True
    return False


def check_url(url: str, site: Site, *, task_id: str | None = None) -> str:
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DownloadError(f"RunningHub returned an output URL that is not http(s): {url[:120]!r}"
                            + (f" (task {task_id})" if task_id else ""), task_id=task_id, site=site.name)
    if site.name != "custom" and _is_local_address(parsed.hostname):
        raise DownloadError(f"Refusing to download an output from a local or private address ({parsed.hostname})"
                            + (f" for task {task_id}" if task_id else "") + ".", task_id=task_id, site=site.name)
    return url


def download_to(session: requests.Session, url: str, sink: BinaryIO, *, site: Site, max_bytes: int = DEFAULT_MAX_BYTES,
                timeouts: Timeouts | None = None, retry: RetryPolicy | None = None, task_id: str | None = None,
                label: str = "output") -> int:
    """Stream `url` into `sink` (rewound on each retry). Returns the byte count."""
    timeouts = timeouts or Timeouts(read=60.0, deadline=600.0)
    retry = retry or RetryPolicy()
    started = time.monotonic()
    ctx = f"{label} of task {task_id}" if task_id else label
    attempt = 0
    while True:
        attempt += 1
        sink.seek(0)
        sink.truncate()
        try:
            return _fetch_once(session, url, sink, site=site, max_bytes=max_bytes, timeouts=timeouts,
                               task_id=task_id, ctx=ctx)
        except _RetryableDownload as exc:
            reason = str(exc)
        elapsed = time.monotonic() - started
        delay = retry.delay(attempt)
        if attempt >= retry.attempts or elapsed + delay > timeouts.deadline:
            raise DownloadError(f"Could not download {ctx}: {reason} (after {attempt} attempt(s)).",
                                task_id=task_id, site=site.name)
        log.info("download of %s failed (%s); retrying in %.2f s", ctx, reason, delay)
        time.sleep(delay)


class _RetryableDownload(Exception):
    pass


def _fetch_once(session, url, sink, *, site, max_bytes, timeouts, task_id, ctx) -> int:
    current = url
    for _hop in range(4):
        check_url(current, site, task_id=task_id)
        try:
            resp = session.get(current, stream=True, allow_redirects=False,
                               timeout=(timeouts.connect, timeouts.read))
        except requests.RequestException as exc:
            raise _RetryableDownload(f"{type(exc).__name__}") from None
        with resp:
            if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                current = urljoin(current, resp.headers["Location"])
                continue
            if resp.status_code in (404, 410, 403):
                raise DownloadError(f"The {ctx} is no longer available (HTTP {resp.status_code}); RunningHub "
                                    "output links expire after about a day. Run the workflow again to get new "
                                    "outputs.", task_id=task_id, site=site.name)
            if resp.status_code == 429 or resp.status_code >= 500:
                raise _RetryableDownload(f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise DownloadError(f"Downloading the {ctx} failed with HTTP {resp.status_code}.",
                                    task_id=task_id, site=site.name)
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise DownloadError(f"The {ctx} is {int(declared) / 1e6:.1f} MB, over the limit of "
                                    f"{max_bytes / 1e6:.0f} MB for this kind of output.", task_id=task_id,
                                    site=site.name)
            total = 0
            try:
                for chunk in resp.iter_content(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise DownloadError(f"The {ctx} is over the limit of {max_bytes / 1e6:.0f} MB for this "
                                            "kind of output.", task_id=task_id, site=site.name)
                    sink.write(chunk)
            except requests.RequestException as exc:
                raise _RetryableDownload(f"connection broke after {total} bytes ({type(exc).__name__})") from None
            if declared and declared.isdigit() and total != int(declared):
                raise _RetryableDownload(f"got {total} of {declared} bytes")
            return total
    raise DownloadError(f"Too many redirects for the {ctx}.", task_id=task_id, site=site.name)
