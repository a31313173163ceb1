"""ComfyUI's own API on RunningHub, the "native endpoint": `{site}/proxy/{key}/…` answers
like a local ComfyUI (`/prompt`, `/history`, `/queue`, `/interrupt`, `/view`,
`/upload/image`, `/object_info`, `/ws`), running on the account's cloud GPUs.

**Every URL of it is a secret**: the key is in the path. So
- URLs are built here only (`NativeClient._url`) and never returned, stored or shown;
  errors name the site's host and the operation, nothing more;
- a requests exception (its text holds the URL) is reduced to its type and a reason and
  raised `from None`; server texts are scrubbed (redact.scrub_tree) on arrival;
- the scrub filter (redact.guard_loggers) sits on the loggers that print URLs — urllib3's
  DEBUG line `"POST /proxy/<key>/prompt HTTP/1.1" 200` among them — from the first client on;
- redirects are not followed (one could carry the path elsewhere), except by output
  downloads, whose every hop downloads.py checks.

**Replies** (the real service documents none of its error shapes; see rhsim/README.md for
the simulator's, and keep this tolerant): 401/403 → AuthError naming the site, 402 →
InsufficientFundsError, 429 → CapacityError (nothing was queued: the caller waits and
submits again; client/pool.py does), ComfyUI's 400 `{error, node_errors}` →
ValidationFailedError naming the remote nodes and their messages.

**Retries**: every call but `POST /prompt` is safe to repeat and goes through the one
request loop (transport.request_with_retries, on retry.Attempts: jittered backoff, Retry-After,
deadline, the run's stop).
`POST /prompt` carries a `prompt_id` the caller chose: it is sent again only when it
provably never left this machine. When its reply is lost (connection dropped, read timeout,
5xx, a reply that is not ComfyUI's), the prompt is looked up by that id in `/queue` and
`/history` instead: found means accepted; not found after a few looks raises
SubmissionUncertainError (never a blind resubmit: that could run and bill it twice).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlencode

import requests

from .api import describe_node_errors
from .credentials import ApiKey
from .downloads import DEFAULT_MAX_BYTES, download_to
from .errors import (AuthError, CapacityError, InsufficientFundsError, ProtocolError, RunningHubError,
                     SubmissionUncertainError, TransportError, ValidationFailedError)
from .redact import guard_loggers, remember_secret, scrub, scrub_tree
from .retry import RetryPolicy, parse_retry_after
from .sites import Site
from .stop import pause, shielded
from .task_socket import TaskSocket
from .transport import Retryable, Timeouts, new_session, request_with_retries

log = logging.getLogger("runninghub_bridge.client")

OBJECT_INFO_SECONDS = 300.0  # how long one site + key's /object_info is reused
LOOKUP_DELAYS = (0.0, 0.5, 1.0, 2.0)  # looks for a prompt whose submission reply was lost
MAX_SERVER_TEXT = 300  # characters of a server's error message kept in an exception
OUTPUT_TYPES = ("output", "temp", "input")

_object_info: dict[tuple[str, str], tuple[float, dict]] = {}
_object_info_lock = threading.Lock()


@dataclass(frozen=True)
class FileRef:
    """One file of a history output (`{"filename", "subfolder", "type"}`), as `/view` takes it."""

    filename: str
    subfolder: str = ""
    type: str = "output"

    @classmethod
    def parse(cls, item: Any) -> "FileRef":
        if isinstance(item, FileRef):
            return item
        if not isinstance(item, Mapping) or not isinstance(item.get("filename"), str) or not item["filename"]:
            raise ValueError(f"not a ComfyUI file reference: {str(item)[:120]!r}")
        kind = str(item.get("type") or "output")
        if kind not in OUTPUT_TYPES:
            raise ValueError(f"unknown ComfyUI file type {kind!r}")
        return cls(str(item["filename"]), str(item.get("subfolder") or ""), kind)

    def params(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


@dataclass(frozen=True)
class Submitted:
    """A prompt the remote accepted. `recovered`: its reply was lost and the prompt was
    found by its id in the queue or history."""

    prompt_id: str
    number: float | None = None
    node_errors: dict = field(default_factory=dict)
    recovered: bool = False


class Place(str, Enum):
    """Where a prompt is on the remote ComfyUI."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"  # in /history: finished, however it ended
    UNKNOWN = "UNKNOWN"  # in neither the queue nor the history


@dataclass(frozen=True)
class Lookup:
    place: Place
    history: dict | None = None  # the prompt's /history entry, once DONE


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    pending: tuple[str, ...]


class _Lost(Exception):
    """Internal: a request that was sent but got no usable reply."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


def _reason(exc: requests.RequestException) -> str:
    """What went wrong, without the exception's text (it holds the URL)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "ConnectTimeout (no connection within the connect timeout)"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "ReadTimeout (no reply within the read timeout)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "ChunkedEncodingError (the reply was cut off)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "ConnectionError (connection refused, reset or closed)"
    return type(exc).__name__


def _server_text(doc: Any) -> str:
    """The message of an error reply (`{"error": {"message"}}`, `{"error": "..."}`,
    `{"message"}`), scrubbed and capped; "" when there is none."""
    if isinstance(doc, Mapping):
        error = doc.get("error")
        if isinstance(error, Mapping):
            text = error.get("message") or error.get("type") or ""
        else:
            text = error or doc.get("message") or doc.get("msg") or ""
    else:
        text = ""
    return scrub(str(text))[:MAX_SERVER_TEXT].strip()


class NativeClient:
    """ComfyUI's API at `{site.base_url}/proxy/{key}`, for one site and one key. Thread-safe
    (one pooled session). Its repr shows the key's last 4 characters only."""

    def __init__(self, site: Site, key: ApiKey, *, timeouts: Timeouts | None = None,
                 retry: RetryPolicy | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, lookup_delays: tuple[float, ...] = LOOKUP_DELAYS):
        remember_secret(key.secret)  # an ApiKey did already; a URL holding it is scrubbed from now on
        guard_loggers()
        self.site = site
        self.key = key
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.lookup_delays = lookup_delays
        self._sleep = sleep
        self.session = session or new_session(hosts=4, per_host=16)
        self._base = f"{site.base_url}/proxy/{quote(key.secret, safe='')}"

    def __repr__(self) -> str:
        return f"NativeClient({self.site.host}, {self.key.hint})"

    @property
    def key_id(self) -> str:
        """An opaque id of the key (for caches): says nothing about the key."""
        return hashlib.sha256(b"rh-native:" + self.key.secret.encode()).hexdigest()[:20]

    def _url(self, path: str) -> str:
        """The only place a native URL is made. Never let one out of this class."""
        return self._base + path

    def _what(self, operation: str) -> str:
        return f"RunningHub native {operation} ({self.site.host})"

    # -- the one request loop -------------------------------------------------------------

    def _send(self, method: str, path: str, *, operation: str, repeatable: bool, params: dict | None = None,
              json_body: Any = None, files: dict | None = None, form: dict | None = None,
              read_timeout: float | None = None, want_json: bool = True) -> Any:
        """The decoded (and scrubbed) JSON reply, or None for an empty one, through the one
        request loop (transport.request_with_retries). Raises the errors above; _Lost for a
        non-repeatable call that was sent without a usable reply."""
        what = self._what(operation)
        return request_with_retries(
            self.session, method, self._url(path),
            parse=lambda resp: self._reply(resp, what, want_json=want_json, repeatable=repeatable),
            describe=lambda exc: f"{what}: {_reason(exc)}", lost=_Lost, repeatable=repeatable, retry=self.retry,
            timeouts=self.timeouts, site=self.site, what=what, sleep=self._sleep, read_timeout=read_timeout,
            params=params, json=json_body, files=files, data=form)

    def _reply(self, resp: requests.Response, what: str, *, want_json: bool, repeatable: bool) -> Any:
        status = resp.status_code
        body = resp.content or b""
        doc: Any = None
        if body.strip():
            try:
                doc = scrub_tree(json.loads(body))  # network text: an echoed key stops here
            except ValueError:
                doc = None
                if status == 200 and want_json:
                    kind = "an HTML page" if body.lstrip()[:1] == b"<" else "malformed JSON"
                    raise Retryable(f"{what} answered with {kind} instead of ComfyUI's JSON", sent=True, protocol=True)
        if status == 200:
            if want_json and doc is None:
                raise Retryable(f"{what} answered with an empty reply", sent=True, protocol=True)
            return doc
        said = _server_text(doc)
        said = f": {said}" if said else ""
        if status in (401, 403):
            raise AuthError(f"{what} refused the key {self.key.hint} (HTTP {status}{said}). The key must belong to "
                            f"an account of {self.site.host} that may use the native ComfyUI endpoint. "
                            f"{self.site.other_site_hint()}", code=status, site=self.site.name)
        if status == 402:
            raise InsufficientFundsError(f"{what}: the account of key {self.key.hint} has no balance left (HTTP 402"
                                         f"{said}). Top up on {self.site.host} and queue again.", code=402,
                                         site=self.site.name)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if status == 429:
            if repeatable:
                raise Retryable(f"{what} answered HTTP 429", sent=True, retry_after=retry_after)
            raise CapacityError(f"{what}: the account's limit of prompts at once is reached (HTTP 429{said}); "
                                "nothing was queued.", code=429, site=self.site.name)
        if status == 400:
            raise self._rejected(doc, what)
        if status >= 500:
            raise Retryable(f"{what} answered HTTP {status}", sent=True, retry_after=retry_after)
        if 300 <= status < 400:
            raise ProtocolError(f"{what} answered with a redirect (HTTP {status}), which the pack does not follow "
                                "for this endpoint. Check the site's address.", site=self.site.name)
        if status == 404:
            raise ProtocolError(f"{what} answered HTTP 404{said}: {self.site.host} does not offer this part of "
                                "ComfyUI's API through the native endpoint.", code=404, site=self.site.name)
        raise RunningHubError(f"{what} failed with HTTP {status}{said}.", code=status, site=self.site.name)

    def _rejected(self, doc: Any, what: str) -> ValidationFailedError:
        """ComfyUI's 400 `{error: {type, message, details}, node_errors: {...}}` as an error
        naming the remote nodes and their messages."""
        node_errors = doc.get("node_errors") if isinstance(doc, Mapping) else None
        node_errors = node_errors if isinstance(node_errors, dict) else {}
        error = doc.get("error") if isinstance(doc, Mapping) else None
        message = _server_text(doc) or "no reason given"
        if isinstance(error, Mapping):
            details = scrub(str(error.get("details") or ""))[:MAX_SERVER_TEXT].strip()
            if details and details not in message:
                message += f" ({details})"
        nodes = describe_node_errors(node_errors)
        text = f"{what}: the remote ComfyUI refused the prompt: {message}"
        if nodes:
            text += f". Remote nodes: {nodes}"
        return ValidationFailedError(text + ". Nothing was queued or billed: fix the listed nodes and queue again.",
                                     node_errors=node_errors, code=400, site=self.site.name)

    # -- reading ----------------------------------------------------------------------------

    def object_info(self, *, max_age: float = OBJECT_INFO_SECONDS) -> dict:
        """GET /object_info: every node class the remote offers, cached `max_age` seconds
        per site and key."""
        cache_key = (self.site.base_url, self.key_id)
        now = time.monotonic()
        with _object_info_lock:
            hit = _object_info.get(cache_key)
        if hit is not None and now - hit[0] < max_age:
            return hit[1]
        doc = self._send("GET", "/object_info", operation="object_info", repeatable=True,
                         read_timeout=max(self.timeouts.read, 60.0))
        if not isinstance(doc, dict):
            raise ProtocolError(f"{self._what('object_info')} answered with JSON that is not a node list.",
                                site=self.site.name)
        with _object_info_lock:
            _object_info[cache_key] = (now, doc)
        return doc

    def history(self, prompt_id: str) -> dict | None:
        """GET /history/{prompt_id}: the prompt's history entry (`status`, `outputs`, ...) or
        None while it has none (queued, running, unknown)."""
        doc = self._send("GET", f"/history/{quote(str(prompt_id), safe='')}", operation="history",
                         repeatable=True)
        entry = doc.get(str(prompt_id)) if isinstance(doc, dict) else None
        return entry if isinstance(entry, dict) else None

    def queue(self) -> QueueState:
        """GET /queue: the ids of the running and the pending prompts (this key's)."""
        doc = self._send("GET", "/queue", operation="queue", repeatable=True)
        doc = doc if isinstance(doc, dict) else {}

        def ids(items: Any) -> tuple[str, ...]:
            return tuple(str(item[1]) for item in items or () if isinstance(item, (list, tuple)) and len(item) > 1)

        return QueueState(running=ids(doc.get("queue_running")), pending=ids(doc.get("queue_pending")))

    def find(self, prompt_id: str) -> Lookup:
        """Where `prompt_id` is. The queue is asked first, then the history: a prompt that
        leaves the queue between the two calls is in the history by the second."""
        queue = self.queue()
        if prompt_id in queue.running:
            return Lookup(Place.RUNNING)
        if prompt_id in queue.pending:
            return Lookup(Place.QUEUED)
        entry = self.history(prompt_id)
        return Lookup(Place.DONE, entry) if entry is not None else Lookup(Place.UNKNOWN)

    # -- writing ----------------------------------------------------------------------------

    def upload_image(self, data: bytes, name: str, *, subfolder: str = "", overwrite: bool = False,
                     content_type: str = "image/png") -> str:
        """POST /upload/image into the remote's input folder; returns the name a remote
        LoadImage takes (`subfolder/name`, as the server stored it). Safe to repeat: ComfyUI
        keeps one file for the same name and bytes."""
        files = {"image": (name, io.BytesIO(data), content_type)}
        form = {"type": "input", "subfolder": subfolder}
        if overwrite:
            form["overwrite"] = "true"
        doc = self._send("POST", "/upload/image", operation=f"upload of {name}", repeatable=True, files=files,
                         form=form, read_timeout=self.timeouts.upload_read)
        stored = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(stored, str) or not stored:
            raise ProtocolError(f"{self._what(f'upload of {name}')} answered without the file's name.",
                                site=self.site.name)
        folder = doc.get("subfolder") or ""
        return f"{folder}/{stored}" if folder else stored

    def submit(self, prompt: Mapping[str, Any], prompt_id: str, client_id: str, *,
               extra_data: Mapping[str, Any] | None = None) -> Submitted:
        """POST /prompt with the caller's `prompt_id` and `client_id` (its /ws receives the
        prompt's messages). Never sent twice once it may have arrived: a lost reply is
        resolved by looking the prompt up (`recovered`), or SubmissionUncertainError."""
        body: dict[str, Any] = {"prompt": dict(prompt), "prompt_id": str(prompt_id), "client_id": str(client_id)}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        try:
            doc = self._send("POST", "/prompt", operation=f"submission of prompt {prompt_id}", repeatable=False,
                             json_body=body)
        except _Lost as lost:
            return self._recover(str(prompt_id), lost.description)
        if not isinstance(doc, dict):
            return self._recover(str(prompt_id), f"{self._what('submission')} answered with JSON that is not "
                                                 "ComfyUI's")
        accepted = str(doc.get("prompt_id") or prompt_id)
        if accepted != str(prompt_id):
            log.warning("the remote ComfyUI gave prompt %s its own id %s (it ignores client-chosen ids)",
                        prompt_id, accepted)
        node_errors = doc.get("node_errors") if isinstance(doc.get("node_errors"), dict) else {}
        number = doc.get("number")
        log.info("prompt %s queued on %s with key %s", accepted, self.site.host, self.key.hint)
        return Submitted(accepted, number if isinstance(number, (int, float)) else None, node_errors)

    def _recover(self, prompt_id: str, what_happened: str) -> Submitted:
        """The submission may have arrived: look for the prompt instead of sending it again.
        The looks are shielded from the run's stop: a prompt that exists must be found, so
        that a stop can interrupt it."""
        log.warning("%s; looking for prompt %s instead of sending it again", what_happened, prompt_id)
        with shielded():
            for delay in self.lookup_delays:
                if delay:
                    pause(delay, sleep=self._sleep)
                try:
                    found = self.find(prompt_id)
                except (TransportError, ProtocolError) as exc:
                    log.info("looking for prompt %s failed (%s)", prompt_id, type(exc).__name__)
                    continue
                if found.place is not Place.UNKNOWN:
                    log.info("prompt %s was accepted after all (%s)", prompt_id, found.place.value.lower())
                    return Submitted(prompt_id, recovered=True)
        raise SubmissionUncertainError.after(
            f"{what_happened}, and prompt {prompt_id} was not found in the remote queue or history afterwards",
            host=self.site.host, site=self.site.name)

    def interrupt(self, prompt_id: str) -> None:
        """POST /interrupt for this prompt only (a running one). Sent once: repeated only
        when it provably never left this machine."""
        self._once("POST", "/interrupt", {"prompt_id": str(prompt_id)}, f"interrupt of prompt {prompt_id}")
        log.info("interrupted prompt %s on %s", prompt_id, self.site.host)

    def delete(self, prompt_id: str) -> None:
        """POST /queue `{"delete": [prompt_id]}`: takes a prompt that is still queued off the
        queue (a running one is not affected: interrupt it). Sent once, as `interrupt`."""
        self._once("POST", "/queue", {"delete": [str(prompt_id)]}, f"removal of queued prompt {prompt_id}")
        log.info("removed queued prompt %s on %s", prompt_id, self.site.host)

    def _once(self, method: str, path: str, body: dict, operation: str) -> None:
        try:
            self._send(method, path, operation=operation, repeatable=False, json_body=body, want_json=False)
        except _Lost as lost:
            raise TransportError(f"{lost.description}: the {operation} may not have arrived.",
                                 site=self.site.name) from None

    # -- files and the socket ------------------------------------------------------------

    def download(self, file_ref: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, label: str | None = None) -> bytes:
        """GET /view of one history output file (`{filename, subfolder, type}`): streamed,
        size-capped, retried, its hops checked (client/downloads.py). DownloadError."""
        ref = FileRef.parse(file_ref)
        sink = io.BytesIO()
        url = self._url("/view") + "?" + urlencode(ref.params())
        download_to(self.session, url, sink, site=self.site, max_bytes=max_bytes, retry=self.retry,
                    timeouts=Timeouts(connect=self.timeouts.connect, read=60.0, deadline=600.0),
                    label=label or f"remote output {ref.filename}")
        return sink.getvalue()

    def socket_url(self, client_id: str) -> str:
        """`ws(s)://…/proxy/{key}/ws?clientId=…`: for open_socket only (a secret, as every URL here)."""
        base = self._url("/ws")
        base = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
        return f"{base}?{urlencode({'clientId': str(client_id)})}"

    def open_socket(self, client_id: str, prompt: Mapping[str, Any] | None = None, *,
                    label: str = "", on_message: Callable[[dict], None] | None = None) -> TaskSocket | None:
        """Follow the /ws of `client_id` in the background (client/task_socket.py): the
        messages of the prompts submitted with that client id, their nodes named from
        `prompt`; `on_message` sees each one (network data) in the socket's thread. None
        when the address is not one to follow."""
        return TaskSocket.open(self.socket_url(client_id), self.site, prompt,
                               label=label or f"native socket of client {str(client_id)[:12]}",
                               on_message=on_message)


def forget_object_info() -> None:
    """Drop every cached /object_info (tests; a user who just added models)."""
    with _object_info_lock:
        _object_info.clear()
