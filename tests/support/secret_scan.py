"""Where test keys must never show up, and the check that looks for them.

Every key a test makes (`simulator.random_keys`, a `Simulator`'s keys) is remembered in
`TEST_KEYS`. `leaks(text, keys)` finds any of them, or any run of 8 or more of their
characters (any case), in a text. `scan_host(host)` looks through everything a ComfyUI with the pack
keeps: its log, `/history`, `/internal/logs`, its user, input, temp and output folders (the
credentials file excepted: it is where keys belong) and the text chunks of every PNG there.
comfy_fixtures runs it on every host it started, at the end of the session, and fails the
run when anything is found.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterable

RUN = 8  # as the pack's own scrub: 8 characters of a key count as the key
PREFIX = 12  # the plainest check: a key's first 12 characters
TEST_KEYS: set[str] = set()
_lock = threading.Lock()
ALLOWED_FILES = ("runninghub/credentials.json",)  # relative to the user folder


def remember(keys: Iterable[str]) -> None:
    with _lock:
        TEST_KEYS.update(k for k in keys if k and len(k) >= RUN)


def leaks(text: str, keys: Iterable[str] | None = None, *, run: int | None = RUN) -> list[str]:
    """`…last4` of each key whose first 12 characters `text` holds, or (with `run`) any run
    of that many of its characters, in any case."""
    lower = text.lower()
    found = []
    for key in sorted(TEST_KEYS if keys is None else keys):
        low = key.lower()
        runs = range(len(low) - run + 1) if run else ()
        if low[:PREFIX] in lower or any(low[i:i + run] in lower for i in runs):
            found.append("…" + key[-4:])
    return found


def assert_no_key(text: str, keys: Iterable[str] | None = None, where: str = "text") -> None:
    found = leaks(text, keys)
    assert not found, f"keys {found} (or 8+ of their characters) in the {where}: {text[:500]}"


def png_texts(path: Path) -> str:
    """The text chunks (workflow, prompt, anything else) of a PNG file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return json.dumps({k: str(v) for k, v in (getattr(image, "text", None) or image.info).items()})
    except Exception as exc:  # noqa: BLE001 - a broken file is reported, not skipped
        return f"<unreadable PNG {path}: {exc}>"


def scan_host(host) -> list[str]:
    """Every place of `host` holding a test key, as 'where: …last4, …' lines."""
    if not TEST_KEYS or host.base_dir is None:
        return []
    places: dict[str, str] = {"log": host.log_text()}
    if host.running:
        for route in ("/history?max_items=100000", "/internal/logs"):
            try:
                places[route] = host.get(route).text
            except Exception as exc:  # noqa: BLE001
                places[route] = f"<{route} failed: {exc}>"
    allowed = {host.user_dir / rel for rel in ALLOWED_FILES}
    for folder in ("user", "input", "temp", "output"):
        for path in sorted((host.base_dir / folder).rglob("*")):
            if not path.is_file() or path in allowed or path.name.startswith(".credentials-"):
                continue
            places[str(path.relative_to(host.base_dir))] = path.read_bytes().decode("latin-1")
            if path.suffix.lower() == ".png":
                places[f"{path.relative_to(host.base_dir)} (PNG metadata)"] = png_texts(path)
    # Whole keys and their first 12 characters only: over every file of a session, runs of 8
    # would match hex names (sha256 file names) of hundreds of test keys by chance.
    return [f"{host.name} {where}: {', '.join(found)}" for where, text in places.items()
            if (found := leaks(text, run=None))]
