"""Keys never appear in full: not in logs, reprs, error texts or anything saved."""

from __future__ import annotations

import re
from collections.abc import Iterable

_KEYLIKE = re.compile(r"\b[0-9a-fA-F]{32}\b")


def redact_key(key: str | None) -> str:
    """`…` plus the last 4 characters; `(none)` for no key."""
    if not key:
        return "(none)"
    return "…" + key[-4:]


def scrub(text: str, keys: Iterable[str] = ()) -> str:
    """Replace every known key, and anything shaped like a RunningHub key, by its redaction.

    Applied to any text that came from the server or from an exception before it is logged
    or shown, because a server may echo the request back.
    """
    for key in keys:
        if key and len(key) >= 8:
            text = text.replace(key, redact_key(key))
    return _KEYLIKE.sub(lambda m: redact_key(m.group(0)), text)
