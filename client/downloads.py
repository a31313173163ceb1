"""Downloads of output files: the URLs come from the network, so they are untrusted.

- only http(s); redirects followed by hand (at most 3) and each hop checked again;
- only global addresses, checked before connecting (`check_url`) and again for the address
  actually connected to (`check_peer`); a custom base URL (a local proxy, or the simulator
  in tests) lets its own host through, nothing else;
- streamed, with a size cap checked against Content-Length and while reading;
- connect/read timeouts and an overall deadline, retried through the one retry helper
  (retry.Attempts: Retry-After honoured); a reset mid-body restarts the download (a
  bounded number of times) so the body is either whole or an error, never truncated;
- the run's stop (client/stop.py) and the deadline are checked between body chunks, and the
  read watchdog (client/read_watch.py) cuts a read that blocks (a server trickling bytes)
  within a tick of either;
- `Content-Encoding: gzip/deflate` bodies are decoded; Content-Length is compared with the
  bytes on the wire, the size cap with the decoded bytes.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
from typing import BinaryIO, Callable, Iterable
from urllib.parse import urljoin, urlparse

import requests

from .errors import DownloadError
from .retry import Attempts, RetryPolicy, parse_retry_after
from .sites import Site
from .read_watch import watching
from .stop import stop_requested, stoppable
from .transport import Timeouts

log = logging.getLogger("runninghub_bridge.client")

DEFAULT_MAX_BYTES = 2 * 1024 ** 3  # 2 GiB: a long video; images are capped lower by callers
_CHUNK = 1024 * 1024


Resolver = Callable[[str], Iterable[str]]  # host name -> its addresses
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_INET_ATON_PART = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


def system_resolver(host: str) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, None)]


def check_url(url: str, site: Site, *, task_id: str | None = None, resolve: Resolver | None = None) -> str:
    """`url`, when it may be fetched: http(s), and every address of its host global (no
    loopback, private, link-local, shared 100.64/10, reserved...), in whatever form the
    host is written (v4-mapped, hex, octal, decimal). A custom base URL (a local proxy, the
    simulator) lets its own host through, on any port, and nothing else."""
    parsed = urlparse(url or "")
    where = f" (task {task_id})" if task_id else ""
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DownloadError(f"RunningHub returned an output URL that is not http(s): {url[:120]!r}{where}",
                            task_id=task_id, site=site.name)
    host = parsed.hostname
    resolve = resolve or system_resolver
    if _is_site_host(host, site, resolve):
        return url
    bad = [a for a in _addresses(host, resolve) if not _is_global(a)]
    if bad:
        raise DownloadError(f"Refusing to download an output from {host} ({bad[0]} is a local, private or reserved "
                            f"address){where}: RunningHub's output links point at public hosts.",
                            task_id=task_id, site=site.name)
    return url


def check_peer(resp: requests.Response, site: Site, *, task_id: str | None = None) -> None:
    """After connecting, before reading: the address actually connected to passes the same
    rule. A host name can resolve to a public address for `check_url` and to a local one a
    moment later for the connection (DNS rebinding); this closes that gap. Skipped when a
    proxy made the connection (the proxy resolved the name, not us)."""
    host = urlparse(resp.url).hostname or ""
    if requests.utils.select_proxy(resp.url, requests.utils.get_environ_proxies(resp.url)):
        return
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is None:
        return  # nothing connected (an already finished body); there is nothing left to read
    peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
    if not _is_global(peer) and peer not in _site_addresses(site, system_resolver):
        raise DownloadError(f"Refusing to download an output from {host}: it resolved to {peer}, a local or private "
                            "address, when connecting (the name's address changed after it was checked).",
                            task_id=task_id, site=site.name)


def _is_site_host(host: str, site: Site, resolve: Resolver) -> bool:
    """The custom base URL's own host: its name, or a name or address all of whose addresses
    are the base host's (`localhost` and `127.0.0.1` then name the same simulator or proxy,
    which serves its files under the address it is bound to)."""
    if site.name != "custom":
        return False
    if host.lower() == (urlparse(site.base_url).hostname or "").lower():
        return True
    addresses = _addresses(host, resolve)
    return bool(addresses) and set(addresses) <= _site_addresses(site, resolve)


def _site_addresses(site: Site, resolve: Resolver) -> set[ipaddress._BaseAddress]:
    """The addresses of a custom base URL's host (none for cn and ai)."""
    if site.name != "custom":
        return set()
    return set(_addresses(urlparse(site.base_url).hostname or "", resolve))


def _addresses(host: str, resolve: Resolver) -> list[ipaddress._BaseAddress]:
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        return [ipaddress.ip_address(str(a).split("%", 1)[0]) for a in resolve(host)]
    except (OSError, ValueError):
        return []  # no address: the connection fails later with a clear error (or check_peer refuses it)


def ip_literal(host: str) -> ipaddress._BaseAddress | None:
    """The address a host written as an IP means, in every form the C library accepts
    (`0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.lower().split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.match(p) for p in parts):
        return None
    numbers = [int(p[2:] or "0", 16) if p.startswith("0x") else int(p, 8) if p.startswith("0") else int(p)
               for p in parts]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _is_global(addr: ipaddress._BaseAddress) -> bool:
    """Public unicast; an IPv6 form that carries an IPv4 address is judged by that address."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_global(embedded)
    return addr.is_global and not addr.is_multicast


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
            resp = stoppable(functools.partial(session.get, current, stream=True, allow_redirects=False,
                                               timeout=(timeouts.connect,
                                                        min(timeouts.read, max(attempts.remaining, 0.1)))),
                             what=f"download of the {ctx}", on_abandoned=requests.Response.close)
        except requests.RequestException as exc:
            raise _RetryableDownload(f"{type(exc).__name__}") from None
        with resp:
            check_peer(resp, site, task_id=task_id)
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
        with watching(resp, lambda: stop_requested() or attempts.remaining <= 0):
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


