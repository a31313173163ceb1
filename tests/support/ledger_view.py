"""A ComfyUI's task ledger as its rows, read straight from the file (what survives a kill)."""

from __future__ import annotations

import sqlite3


def ledger_rows(host) -> list[dict]:
    """Every entry of `host`'s ledger, oldest first; [] before the ledger exists."""
    path = host.user_dir / "runninghub" / "tasks.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY entry")]
