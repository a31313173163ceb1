"""The task ledger's record of a native run (kind "native", task id = prompt id): its
fingerprint, its entry's moves and end, and its outputs as the ledger keeps them."""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from typing import Any, Callable, Mapping

from ..client.ledger import LedgerEntry, RunFingerprint, written_for_existing_task
from .native_result import NativePromptResult
from .reattach import LedgerRun, RunJournal, recorded_end

KIND = "native"


def fingerprint_for(site_url: str, journal: RunJournal, prompt: Mapping[str, Any],
                    parts: Mapping[str, Any] | None) -> RunFingerprint:
    """What makes two native runs the same: the caller's `parts` when given (it knows what
    matters: e.g. the prompt with uploads named by content hash, whatever the remote named
    them), else the prompt itself; plus account, seed and list item."""
    basis = {"parts": dict(parts)} if parts else {"prompt": prompt}
    canonical = json.dumps(basis, sort_keys=True, ensure_ascii=True, default=repr)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]  # not 32: that would look like a key
    return RunFingerprint.of(site=site_url, account=journal.account, kind=KIND, workflow_id=f"prompt {digest}",
                             instance_type=KIND, overrides=(), seed=journal.seed, run_index=journal.run_index)

def outputs_for_ledger(outputs: Mapping[str, Any]) -> list[dict]:
    """History outputs as the ledger's output list (the task panel's shape: url, file_type,
    node_id), each item keeping what rebuilds the dict (`outputs_from_ledger`)."""
    items = []
    for node_id, output in (outputs or {}).items():
        if not isinstance(output, Mapping):
            continue
        for name, values in output.items():
            for value in values if isinstance(values, list) else [values]:
                file_type = ""
                if isinstance(value, Mapping) and isinstance(value.get("filename"), str):
                    file_type = value["filename"].rsplit(".", 1)[-1].lower() if "." in value["filename"] else ""
                items.append({"url": None, "file_type": file_type or name, "node_id": str(node_id), "output": name,
                              "value": value, "whole": not isinstance(values, list)})
    return items


def outputs_from_ledger(text: str | None) -> dict:
    outputs: dict[str, dict] = {}
    for item in json.loads(text or "[]"):
        if not isinstance(item, dict) or "output" not in item:
            continue
        node = outputs.setdefault(str(item.get("node_id")), {})
        if item.get("whole"):
            node[item["output"]] = item.get("value")
        else:
            node.setdefault(item["output"], []).append(item.get("value"))
    return outputs


class NativeRecord:
    """One native run's ledger entry (no-ops without a journal)."""

    def __init__(self, journal: RunJournal | None, fingerprint: RunFingerprint | None):
        self.journal = journal
        self.ledger = journal.ledger if journal is not None else None
        self.run = LedgerRun(journal, fingerprint) if journal is not None and fingerprint is not None else None
        self.entry: int | None = None

    def turn(self, should_stop):
        if self.run is None:
            return nullcontext()
        return self.run.turn(should_stop)

    def earlier(self) -> LedgerEntry | None:
        if self.run is None:
            return None
        found = self.run.earlier(known_id=True, what="native prompt")
        if found is not None:
            self.entry = found.entry
        return found

    def begin(self, key_hint: str, prompt_id: str) -> None:
        if self.ledger is not None:
            self.entry = self.ledger.begin(self.run.fingerprint, key_hint=key_hint, prompt_id=self.journal.prompt_id,
                                           node_id=self.journal.node_id, task_id=prompt_id)
            self.run.follow(self.entry)

    def created(self, prompt_id: str, state: str = "QUEUED") -> None:
        self._write(lambda entry: self.ledger.created(entry, prompt_id, state), prompt_id)

    def moved(self, state: str) -> None:
        self._write(lambda entry: self.ledger.moved(entry, state), None)

    def _write(self, write: Callable[[int], Any], prompt_id: str | None) -> None:
        """A write about a prompt that was sent: a failure is logged and does not end the run,
        and the next write is tried as usual (the entry holds the prompt id from `begin`, so a
        missed write leaves nothing the next run cannot look up)."""
        entry = self.entry
        if entry is not None:
            written_for_existing_task(lambda: write(entry), prompt_id)

    def uncertain(self, message: str) -> None:
        if self.entry is not None:
            self.unfollow()
            self.ledger.uncertain(self.entry, message)

    def forget(self) -> None:
        if self.entry is not None:
            self.unfollow()
            self.ledger.forget(self.entry)
            self.entry = None

    def unfollow(self) -> None:
        """This run no longer follows its entry (remote/followers.py)."""
        if self.run is not None:
            self.run.unfollow(self.entry)

    def cancelled_elsewhere(self) -> LedgerEntry | None:
        """The entry, when something else (the task panel's Cancel) has finished it as CANCEL."""
        if self.entry is None:
            return None
        found = self.ledger.get(self.entry)
        return found if found is not None and found.status == "CANCEL" else None

    def finished(self, status: str, *, outputs: Mapping[str, Any] | None = None, message: str = "") -> None:
        self._write(lambda entry: self.ledger.finished(entry, status, message=message, outputs=outputs_for_ledger(
            outputs) if outputs is not None else None), None)
        self.unfollow()  # after the write: a re-queue waiting for this stopped run reads how it ended

    def outcome(self, wait: Callable[[], NativePromptResult]) -> NativePromptResult:
        """`wait()`, recording how it ended; a wait that ended without an answer (an outage,
        a time budget, a shutdown that leaves prompts running) leaves the entry as it was."""
        try:
            result = recorded_end(wait, self.finished)
            self.finished("SUCCESS", outputs=result.outputs)
            return result
        finally:
            self.unfollow()  # after the outcome is written: a waiting re-queue then reads it
