"""HTTP for RunningHub: explicit timeouts, an overall deadline, and retries only where a
repeat is safe.

Repeatable calls (outputs, status, account, getJsonApiFormat, upload, cancel) retry on
connection errors, HTTP 5xx/429 and non-protocol replies with jittered, capped exponential
backoff, honouring Retry-After (capped), through the one retry helper (retry.Attempts),
which also stops waiting when the run is stopped (client/stop.py). Non-repeatable calls (create, ai-app run) retry
only when the request provably never left this machine (connection refused, connect
timeout); any failure after sending raises SubmissionUncertainError, because RunningHub has
no idempotency key and a blind resubmit could bill twice.

`request_with_retries` is that one request loop; the v1 API (`Transport.call`) and the
native ComfyUI endpoint (client/native.py) each pass it their own reply parser.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import requests
import urllib3

from .credentials import ApiKey
from .errors import ProtocolError, SubmissionUncertainError, TransportError
from .inflight import IN_FLIGHT
from .redact import scrub, scrub_tree
from .retry import Attempts, RetryPolicy, parse_retry_after
from .sites import Site
from .stop import stoppable

log = logging.getLogger("runninghub_bridge.client")

USER_AGENT = "comfyui-runninghub-bridge/0.1"


def new_session(*, hosts: int = 8, per_host: int = 32) -> requests.Session:
    """A keep-alive session for one client: no retries of its own (client/retry.py decides),
    the pack's User-Agent, proxies from the environment."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=hosts, pool_maxsize=per_host, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = True
    return session


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 30.0
    upload_read: float = 300.0
    deadline: float = 120.0  # one call, all retries included


@dataclass(frozen=True)
class Envelope:
    """The v1 reply: `{"code": int, "msg": str, "data": ...}` (extra keys ignored)."""

    code: int
    msg: str
    data: Any
    http_status: int

    @property
    def ok(self) -> bool:
        return self.code == 0


T = TypeVar("T")


class Retryable(Exception):
    """A failure worth another attempt (if the call is repeatable): raised by a reply parser
    of `request_with_retries`."""

    def __init__(self, description: str, *, sent: bool, retry_after: float | None = None, protocol: bool = False):
        super().__init__(description)
        self.description = description
        self.sent = sent
        self.retry_after = retry_after
        self.protocol = protocol  # the server answered, but not in RunningHub's protocol


def _was_sent(exc: requests.RequestException) -> bool:
    """False only when the request provably never reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        # requests wraps urllib3's MaxRetryError, whose reason says why no connection was made
        # (refused, unreachable, name not resolved: NameResolutionError is a NewConnectionError).
        reason = getattr(exc.args[0], "reason", exc.args[0])
        if isinstance(reason, urllib3.exceptions.NewConnectionError):
            return False
    return True


def parse_envelope(resp: requests.Response, *, what: str) -> Envelope:
    """The envelope, or Retryable for server trouble, or ProtocolError for a non-protocol body.

    Every string of the reply is scrubbed of known keys here, before any caller can put it
    in an exception, a log line, a status message or ComfyUI's history."""
    status = resp.status_code
    if status == 429 or status >= 500:
        raise Retryable(f"HTTP {status} from {what}", sent=True,
                         retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    body = resp.content or b""
    try:
        doc = scrub_tree(json.loads(body))  # the one door for network text: an echoed key stops here
    except ValueError:
        kind = "an HTML page" if body.lstrip()[:1] == b"<" else "malformed JSON"
        raise Retryable(f"{what} answered HTTP {status} with {kind} instead of RunningHub's JSON", sent=True,
                         protocol=True) from None
    if not isinstance(doc, dict) or "code" not in doc:
        raise Retryable(f"{what} answered HTTP {status} with JSON that is not RunningHub's envelope", sent=True,
                         protocol=True)
    try:
        code = int(doc.get("code"))
    except (TypeError, ValueError):
        raise Retryable(f"{what} answered with a non-numeric code {doc.get('code')!r}", sent=True,
                         protocol=True) from None
    if status >= 400 and code == 0:
        raise Retryable(f"{what} answered HTTP {status}", sent=True)
    msg = doc.get("msg")
    if msg is None:
        msg = doc.get("message", "")
    return Envelope(code=code, msg=str(msg or ""), data=doc.get("data"), http_status=status)


class Transport:
    """Talks to one site. Thread-safe for concurrent calls (one pooled session)."""

    def __init__(self, site: Site, *, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep):
        self.site = site
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self.session = session or new_session()

    def url(self, path: str) -> str:
        return self.site.base_url + path

    # -- the one request loop --------------------------------------------------------------

    def call(self, path: str, *, key: ApiKey | None, json_body: dict | None = None, files: dict | None = None,
             form: dict | None = None, repeatable: bool, operation: str, read_timeout: float | None = None) -> Envelope:
        """POST and parse; retries per the policy above. Raises TransportError, ProtocolError or
        SubmissionUncertainError; business codes are returned in the Envelope for the caller."""
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key.secret}"
        secrets = (key.secret,) if key is not None else ()
        what = f"RunningHub {operation} ({self.site.host})"

        def lost(description: str) -> Exception:
            return SubmissionUncertainError.after(f"{description}. The request was sent but no reply arrived",
                                                  host=self.site.host, site=self.site.name)

        return request_with_retries(
            self.session, "POST", self.url(path), parse=lambda resp: parse_envelope(resp, what=what),
            describe=lambda exc: f"{what}: {type(exc).__name__}: {scrub(str(exc), secrets)}", lost=lost,
            repeatable=repeatable, retry=self.retry, timeouts=self.timeouts, site=self.site, sleep=self._sleep,
            what=f"RunningHub {operation}", read_timeout=read_timeout, json=json_body, data=form, files=files,
            headers=headers)


def request_with_retries(session: requests.Session, method: str, url: str, *,
                         parse: Callable[[requests.Response], T], describe: Callable[[requests.RequestException], str],
                         lost: Callable[[str], Exception], repeatable: bool, retry: RetryPolicy, timeouts: Timeouts,
                         site: Site, what: str, sleep: Callable[[float], None] = time.sleep,
                         read_timeout: float | None = None, files: dict | None = None, **request: Any) -> T:
    """Send until `parse(reply)` answers: the one request loop of the pack's API clients.

    `parse` raises Retryable for a failure worth another attempt (or any other error, which
    ends the call); `describe(exc)` says what a requests exception was, without secrets.
    A failure after the request was sent is retried only when `repeatable`; otherwise
    `lost(description)` is raised (never sent twice). Retries go through retry.Attempts
    (backoff, Retry-After, the deadline `timeouts.deadline`, the run's stop: a stopped run
    sends nothing more, and a repeatable call in flight is abandoned at once: stop.stoppable);
    the last failure is a TransportError (ProtocolError when the server answered outside the
    protocol). Upload streams in `files` are rewound before each attempt."""
    attempts = Attempts(retry, deadline=timeouts.deadline, what=what, sleep=sleep)
    while True:
        attempts.begin()
        try:
            for part in (files or {}).values():
                if isinstance(part, tuple) and len(part) > 1 and hasattr(part[1], "seek"):
                    part[1].seek(0)
            send = functools.partial(session.request, method, url, files=files, allow_redirects=False,
                                     timeout=(timeouts.connect, read_timeout or timeouts.read), **request)
            # a repeatable call may be abandoned when the run stops; one that may create
            # something is waited for (its reply says whether it did)
            if repeatable:
                resp = stoppable(send, what=what, on_abandoned=requests.Response.close)
            else:
                with IN_FLIGHT.on(what, creating=True):  # shutdown waits for its reply (host/shutdown.py)
                    resp = send()
            try:
                return parse(resp)
            finally:
                resp.close()
        except Retryable as exc:
            failure = exc
        except requests.RequestException as exc:
            failure = Retryable(describe(exc), sent=_was_sent(exc))
        if failure.sent and not repeatable:
            raise lost(failure.description)
        log.info("%s (attempt %d of %d)", failure.description, attempts.count, retry.attempts)
        if attempts.backoff(failure.retry_after) is None:
            log.warning("%s: giving up after %d attempt(s)", failure.description, attempts.count)
            cls = ProtocolError if failure.protocol else TransportError
            raise cls(f"{failure.description} (gave up after {attempts.count} attempt(s) in "
                      f"{attempts.elapsed:.1f} s). Check your connection to {site.host}, or try again later.",
                      site=site.name) from None
