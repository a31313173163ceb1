"""Keys never appear in full: not in logs, reprs, error texts or anything saved.

Every key the process has seen (an `ApiKey` built from the environment, the credentials
file or a route) is remembered here, so that `scrub` can take any text that came from the
network out of harm's way without each caller knowing which keys exist: a server (or a
man in the middle) may echo a key, or a long part of it, back in a message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

MIN_RUN = 8  # a run of this many characters of a key is treated as the key
_KEYLIKE = re.compile(r"\b[0-9a-fA-F]{32}\b")
_known: set[str] = set()
_grams: dict[str, tuple[str, ...]] = {}  # every MIN_RUN-character run of a known key (lower case) -> those keys
_lock = threading.Lock()


def redact_key(key: str | None) -> str:
    """`…` plus the last 4 characters; `(none)` for no key."""
    if not key:
        return "(none)"
    return "…" + key[-4:]


def remember_secret(secret: str) -> None:
    """Make `scrub` hide `secret` from now on (called for every key the process loads)."""
    if not secret or len(secret) < MIN_RUN or secret in _known:
        return
    with _lock:
        _known.add(secret)
        lower = secret.lower()
        for start in range(len(lower) - MIN_RUN + 1):
            gram = lower[start:start + MIN_RUN]
            if secret not in _grams.get(gram, ()):
                _grams[gram] = _grams.get(gram, ()) + (secret,)


def scrub(text: str, keys: Iterable[str] = ()) -> str:
    """`text` with every known key, every run of 8 or more characters of one (any case), and
    anything shaped like a RunningHub key replaced by `…` + that key's last 4 characters.

    Apply it to any text that came from the network or from an exception before it is
    logged, shown, raised or stored; `keys` adds keys not (yet) remembered.
    """
    for key in keys:
        remember_secret(key)
    if not isinstance(text, str) or len(text) < MIN_RUN:
        return text
    if _grams:
        text = _hide_runs(text)
    return _KEYLIKE.sub(lambda m: redact_key(m.group(0)), text)


def scrub_tree(value: Any) -> Any:
    """Every string (keys included) of decoded JSON with the runs of known keys replaced.
    Unlike `scrub`, key-shaped text is kept: replies carry 32-hex tokens and hashes (in
    output URLs, for one) that are not keys and must stay intact."""
    if isinstance(value, str):
        return _hide_runs(value) if _grams and len(value) >= MIN_RUN else value
    if isinstance(value, list):
        return [scrub_tree(v) for v in value]
    if isinstance(value, dict):
        return {scrub_tree(k): scrub_tree(v) for k, v in value.items()}
    return value


def _hide_runs(text: str) -> str:
    """One pass over `text`: a window that is a run of known keys grows as far as the text
    keeps matching one of them (the one it matches longest: two keys may share a run, and
    growing along the other would leave the rest of this one in the text), and the whole
    run is replaced by that key's hint."""
    lower = text.lower()
    with _lock:
        grams = dict(_grams)
    out: list[str] = []
    done = 0
    i = 0
    while i <= len(lower) - MIN_RUN:
        keys = grams.get(lower[i:i + MIN_RUN])
        if not keys:
            i += 1
            continue
        end, key = max((_run_end(lower, i, k.lower()), k) for k in keys)
        out.append(text[done:i])
        out.append(redact_key(key))
        done = i = end
    out.append(text[done:])
    return "".join(out)


def _run_end(lower_text: str, start: int, lower_key: str) -> int:
    """The end of the longest run of `lower_key` starting at `start` (at least MIN_RUN long)."""
    end = start + MIN_RUN
    while end < len(lower_text) and lower_text[start:end + 1] in lower_key:
        end += 1
    return end


# -- logging: records of libraries that print URLs ------------------------------------------

#: Loggers that print request URLs (urllib3's DEBUG log: `"POST /proxy/<key>/prompt HTTP/1.1"`),
#: or exception texts holding them. Names below a prefix that exist when `guard_loggers`
#: runs get the filter too: a logger's filters apply only to records logged on it.
URL_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
               "urllib3.response", "urllib3.util.retry", "requests", "aiohttp", "aiohttp.client",
               "aiohttp.websocket", "aiohttp.internal", "asyncio", "websocket", "runninghub_bridge",
               "runninghub_bridge.client", "runninghub_bridge.remote", "runninghub_bridge.host",
               "runninghub_bridge.nodes")


class ScrubFilter(logging.Filter):
    """Rewrites a record whose text holds a known key (its message with the arguments
    filled in, its traceback, its stack) with the key replaced; lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _grams:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the logging module's to report
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_FILTER = ScrubFilter()


def guard_loggers(names: Iterable[str] = URL_LOGGERS) -> None:
    """Put the scrub filter on `names` and on every existing logger below them (idempotent)."""
    wanted = tuple(names)
    existing = [n for n in list(logging.Logger.manager.loggerDict)
                if any(n == w or n.startswith(w + ".") for w in wanted)]
    for name in dict.fromkeys((*wanted, *existing)):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
