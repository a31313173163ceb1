"""Downloads of output files: the URLs come from the network, so they are untrusted.

- only http(s); redirects followed by hand (at most 3) and each hop checked again;
- addresses on this machine or a private network are refused unless the account itself
  points at such a base URL (a local proxy, or the simulator in tests);
- streamed, with a size cap checked against Content-Length and while reading;
- connect/read timeouts and an overall deadline, retried through the one retry helper
  (retry.Attempts: Retry-After honoured); a reset mid-body restarts the download (a
  bounded number of times) so the body is either whole or an error, never truncated;
- the run's stop (client/stop.py) and the deadline are checked between body chunks, and a
  watcher cuts a read that blocks (a server trickling bytes) within a tick of either;
- `Content-Encoding: gzip/deflate` bodies are decoded; Content-Length is compared with the
  bytes on the wire, the size cap with the decoded bytes.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import socket
import threading
from contextlib import contextmanager
from typing import BinaryIO, Iterator
from urllib.parse import urljoin, urlparse

import requests

from .errors import DownloadError
from .retry import Attempts, RetryPolicy, parse_retry_after
from .sites import Site
from .stop import TICK, stop_requested
from .transport import Timeouts

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
    """Stream `url` into `sink` (rewound on each retry). Returns the byte count. Raises
    DownloadError, or WaitInterrupted when the run is stopped."""
    timeouts = timeouts or Timeouts(read=60.0, deadline=600.0)
    ctx = f"{label} of task {task_id}" if task_id else label
    attempts = Attempts(retry or RetryPolicy(), deadline=timeouts.deadline, what=f"download of the {ctx}")
    while True:
        attempts.begin()
        sink.seek(0)
        sink.truncate()
        try:
            return _fetch_once(session, url, sink, site=site, max_bytes=max_bytes, timeouts=timeouts,
                               task_id=task_id, ctx=ctx, attempts=attempts)
        except _RetryableDownload as exc:
            failure = exc
        attempts.check_stop()  # a read cut by a stop is no failure to retry
        if attempts.remaining <= 0 or attempts.backoff(failure.retry_after) is None:
            raise DownloadError(f"Could not download the {ctx}: {failure} (after {attempts.count} attempt(s) in "
                                f"{attempts.elapsed:.1f} s; the limit is {timeouts.deadline:.0f} s).",
                                task_id=task_id, site=site.name)
        log.info("download of %s failed (%s); retrying", ctx, failure)


class _RetryableDownload(Exception):
    def __init__(self, description: str, retry_after: float | None = None):
        super().__init__(description)
        self.retry_after = retry_after


def _fetch_once(session, url, sink, *, site, max_bytes, timeouts, task_id, ctx, attempts: Attempts) -> int:
    current = url
    for _hop in range(4):
        check_url(current, site, task_id=task_id)
        try:
            resp = session.get(current, stream=True, allow_redirects=False,
                               timeout=(timeouts.connect, min(timeouts.read, max(attempts.remaining, 0.1))))
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
                raise _RetryableDownload(f"HTTP {resp.status_code}",
                                         retry_after=parse_retry_after(resp.headers.get("Retry-After")))
            if resp.status_code != 200:
                raise DownloadError(f"Downloading the {ctx} failed with HTTP {resp.status_code}.",
                                    task_id=task_id, site=site.name)
            return _read_body(resp, sink, max_bytes=max_bytes, attempts=attempts, ctx=ctx, task_id=task_id,
                              site=site)
    raise DownloadError(f"Too many redirects for the {ctx}.", task_id=task_id, site=site.name)


def _read_body(resp: requests.Response, sink: BinaryIO, *, max_bytes: int, attempts: Attempts, ctx: str,
               task_id: str | None, site: Site) -> int:
    """Stream the body into `sink`: decoded, capped, whole (or _RetryableDownload)."""
    declared = resp.headers.get("Content-Length")
    declared = int(declared) if declared and declared.isdigit() else None
    encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if declared is not None and not encoded and declared > max_bytes:
        raise DownloadError(f"The {ctx} is {declared / 1e6:.1f} MB, over the limit of {max_bytes / 1e6:.0f} MB "
                            "for this kind of output.", task_id=task_id, site=site.name)
    total = 0
    try:
        with _cut_when_stopped(resp, attempts):
            for chunk in resp.iter_content(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise DownloadError(f"The {ctx} is over the limit of {max_bytes / 1e6:.0f} MB for this "
                                        "kind of output.", task_id=task_id, site=site.name)
                sink.write(chunk)
                attempts.check_stop()
                if attempts.remaining <= 0:
                    break
    except (requests.RequestException, OSError) as exc:  # OSError: the watcher cut the socket
        attempts.check_stop()
        raise _RetryableDownload(f"connection broke after {total} bytes ({type(exc).__name__})") from None
    attempts.check_stop()
    if attempts.remaining <= 0:
        raise _RetryableDownload(f"it was not complete after {attempts.deadline:.0f} s ({total} bytes)")
    on_wire = resp.raw.tell()  # bytes as sent (before gzip/deflate decoding)
    if declared is not None and on_wire != declared:
        raise _RetryableDownload(f"got {on_wire} of {declared} bytes")
    return total


@contextmanager
def _cut_when_stopped(resp: requests.Response, attempts: Attempts) -> Iterator[None]:
    """A body read blocks in the socket until bytes arrive (1 byte a second from a
    trickling server): this watcher shuts the socket's reading side within a tick of the
    run's stop or the deadline, so the read ends at once."""
    done = threading.Event()
    run_context = contextvars.copy_context()  # the run's stop is a context variable

    def watch() -> None:
        while not done.wait(TICK):
            if run_context.run(stop_requested) or attempts.remaining <= 0:
                _shut_read_side(resp)
                return

    watcher = threading.Thread(target=watch, name="rh-download-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


def _shut_read_side(resp: requests.Response) -> None:
    """urllib3 2.3+ has HTTPResponse.shutdown (safe from another thread); older ones leave
    the read to its read timeout."""
    shutdown = getattr(resp.raw, "shutdown", None)
    if shutdown is None:
        return
    try:
        shutdown()
    except (OSError, ValueError, RuntimeError):
        pass  # already closed or released: the read is over anyway
