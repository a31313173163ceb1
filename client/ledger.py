"""The task ledger: every RunningHub task this ComfyUI created, kept on disk.

Why: RunningHub's create has no idempotency key, and a task's id lives only in memory
otherwise. A restart, an evicted cache, a polling outage or an error in a later node would
make the next run of the same graph create (and bill) a second task. With the ledger the
run finds the first task by its *fingerprint* (site, account, kind, workflow id, instance
type, overrides with uploaded file names, seed; and which item of a list-mapped run) and
re-attaches to it instead.

Rules:
- An entry is written *before* its create is sent (status SUBMITTING) and updated as the
  task moves (QUEUED, RUNNING, SUCCESS with cost and output URLs, FAILED, CANCEL).
- A create whose reply was lost is MAY_EXIST: a billed task may exist, so the next run with
  that fingerprint raises TaskMayExistError instead of creating another one. So is a
  SUBMITTING entry left by a process that died mid-create (no process holds its turn's
  lock file any more: the system drops a dead process's locks).
- A create that definitely created nothing (refused, no capacity, stopped before sending)
  leaves no entry.
- Entries older than the outputs' lifetime (about a day) are pruned; a finished task is
  reused only while its output URLs are still valid.

Storage: SQLite from the standard library in WAL mode with a busy timeout; every write is
one short transaction (BEGIN IMMEDIATE), so several threads and processes may write at
once and a crash mid-write loses at most that write. One connection per ledger and process,
kept open and shared by its threads under a lock (opening one per write cost a WAL
checkpoint and two fsyncs at every close: ~10 ms a write on a busy disk, four writes per
run). It is reopened when the file was moved away or replaced, or after a database error.

Durability: `synchronous=NORMAL` on that connection. A committed write is in the WAL file
(the OS has it) before the call returns, so it survives the ComfyUI process being killed
at any moment (the promise: an entry written before its create is sent is there after a
crash or kill of ComfyUI); only an OS crash or power loss can lose the last writes, which
then lose the fsync-less WAL frames as a whole, never half a transaction (the file stays
consistent). Holds the key's last 4 characters only, never the key. Pure Python: no
ComfyUI, no torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator

from . import file_lock
from .errors import RunningHubError
from .overrides import NodeOverride
from .records import TaskResult

log = logging.getLogger("runninghub_bridge.client")

#: RunningHub's output URLs expire after about a day: entries older than this are pruned.
OUTPUT_LIFETIME = 24 * 3600.0
#: A finished task is reused only while its URLs have at least this much life left.
REUSE_MARGIN = 3600.0
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another one
PRUNE_EVERY = 3600.0  # a ComfyUI that runs for days prunes as it goes

TURN_LOCK_FILES = 1024  # runs of one fingerprint take turns on one of this many lock files between processes
SUBMITTING, MAY_EXIST = "SUBMITTING", "MAY_EXIST"
WAITING = ("QUEUED", "RUNNING", "CREATE")  # a task that is still on its way
ENDED_WITHOUT_OUTPUTS = ("FAILED", "CANCEL")
_SET_ONCE = ("finished_at",)  # a re-attach to a finished task must not extend its outputs' life
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    entry        INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint  TEXT NOT NULL,
    site         TEXT NOT NULL,
    account      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    seed         TEXT NOT NULL,
    overrides    TEXT NOT NULL,
    task_id      TEXT,
    key_hint     TEXT,
    status       TEXT NOT NULL,
    cost         TEXT,
    outputs      TEXT,
    message      TEXT,
    prompt_id    TEXT,
    node_id      TEXT,
    owner        TEXT NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    finished_at  REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_fingerprint ON tasks (fingerprint, entry);
CREATE INDEX IF NOT EXISTS tasks_by_task_id ON tasks (task_id);
"""


class LedgerError(RunningHubError):
    """The ledger file cannot be used (damaged, not writable)."""


def written_for_existing_task(write: Callable[[], Any], task_id: str | None) -> bool:
    """A ledger write about a task that exists already (created, moved on, finished): a
    failure is logged, not raised. The task runs and bills either way, so the run goes on
    following it; only a restart can then not re-attach to it. False when the write failed."""
    try:
        write()
        return True
    except LedgerError as exc:
        cause = exc.__cause__ or exc
        log.warning("the task ledger could not record RunningHub task %s (%s: %s); the run goes on following it, "
                    "but a restart will not re-attach to it", task_id, type(cause).__name__, cause)
        return False


class TaskMayExistError(RunningHubError):
    """An earlier run with the same fingerprint may have created a billed task whose id is
    unknown: never create another one without the user's say."""


@dataclass(frozen=True)
class RunFingerprint:
    """What makes two runs the same run: the same task would be created by both."""

    site: str  # base URL
    account: str  # profile name
    kind: str
    workflow_id: str
    instance_type: str
    overrides: tuple[tuple[str, str, Any, bool], ...]  # (node id, field, value, typed as text)
    seed: int
    #: A list-mapped node runs once per list item, each a run of its own even when two items
    #: are equal (a batch of two identical images asks for two tasks).
    run_index: int = 0

    @classmethod
    def of(cls, *, site: str, account: str, kind: str, workflow_id: str, instance_type: str,
           overrides: Iterable[NodeOverride], seed: int, run_index: int = 0) -> "RunFingerprint":
        entries = tuple(sorted(((o.node_id, o.field_name, o.value, bool(o.from_text)) for o in overrides),
                               key=lambda e: (e[0], e[1])))
        return cls(site, account, kind, str(workflow_id).strip(), instance_type, entries, int(seed), int(run_index))

    def digest(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=True, default=repr)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class LedgerEntry:
    entry: int
    fingerprint: str
    site: str
    account: str
    kind: str
    workflow_id: str
    instance_type: str
    seed: str
    overrides: str
    task_id: str | None
    key_hint: str | None
    status: str
    cost: str | None
    outputs: str | None
    message: str | None
    prompt_id: str | None
    node_id: str | None
    owner: str
    created_at: float
    updated_at: float
    finished_at: float | None

    def view(self, now: float) -> dict:
        """A JSON-ready view for the task panel (no key: the hint only)."""
        end = self.finished_at if self.finished_at is not None else now
        return {"entry": self.entry, "task_id": self.task_id, "status": self.status, "site": self.site,
                "account": self.account, "kind": self.kind, "workflow_id": self.workflow_id,
                "instance_type": self.instance_type, "seed": self.seed, "key": self.key_hint,
                "cost": self.cost or "", "outputs": json.loads(self.outputs) if self.outputs else [],
                "message": self.message or "", "prompt_id": self.prompt_id, "node_id": self.node_id,
                "created_at": self.created_at, "updated_at": self.updated_at, "finished_at": self.finished_at,
                "elapsed": round(max(0.0, end - self.created_at), 1)}


class TaskLedger:
    """The ledger file at `path` (created on first use). `on_change()` is told about every
    change (the host tells the task panel to read the ledger again); it must not raise."""

    def __init__(self, path: str | os.PathLike, *, clock: Callable[[], float] = time.time,
                 lifetime: float = OUTPUT_LIFETIME, on_change: Callable[[], None] | None = None):
        self.path = os.fspath(path)
        self.lifetime = lifetime
        self.on_change = on_change
        self.owner = uuid.uuid4().hex  # this process: a SUBMITTING entry of another owner is orphaned
        self._clock = clock
        self._ready = False
        self._ready_lock = threading.Lock()
        self._pruned_at = float("-inf")
        self._conn: sqlite3.Connection | None = None
        self._conn_id: tuple[int, int, int] | None = None  # (pid, st_dev, st_ino) it was opened for
        self._conn_lock = threading.RLock()

    # -- storage ------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """A new connection to the file (the setup's own; `_connection` keeps the shared one)."""
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable(exc) from exc
        conn.row_factory = sqlite3.Row
        return conn

    def _file_id(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return os.getpid(), st.st_dev, st.st_ino

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The shared connection, held under the lock (callers run one statement or one
        transaction). Opened on first use, and again when the file is no longer the one it
        was opened on (moved away, replaced; a forked child), or after a database error."""
        with self._conn_lock:
            if self._conn is not None and self._file_id() != self._conn_id:
                self._drop_connection()
                self._ready = False  # a new file gets its schema first
            self._setup()
            ident = self._file_id()
            if self._conn is None:
                conn = self._connect()
                try:
                    conn.execute("PRAGMA synchronous=NORMAL")  # per connection: see the module doc
                except sqlite3.DatabaseError as exc:
                    conn.close()
                    raise self._unusable(exc) from exc
                self._conn, self._conn_id = conn, ident
            try:
                yield self._conn
            except sqlite3.DatabaseError:
                self._drop_connection()
                raise

    def _drop_connection(self) -> None:
        conn, self._conn, self._conn_id = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        """Close the shared connection (the next call opens it again)."""
        with self._conn_lock:
            self._drop_connection()

    def _unusable(self, exc: BaseException) -> LedgerError:
        return LedgerError(f"The RunningHub task ledger {self.path} cannot be used ({exc}). Nothing was created. "
                           "Check that the folder is writable; if the file is damaged, move it away (tasks it "
                           "listed are then no longer re-attached automatically) and queue again.")

    def _setup(self) -> None:
        with self._ready_lock:
            if self._ready:
                return
            deadline = time.monotonic() + BUSY_TIMEOUT
            while not self._set_up_once(final=time.monotonic() >= deadline):
                time.sleep(0.05)
            self._ready = True
        self.prune()

    def _set_up_once(self, *, final: bool) -> bool:
        """WAL mode and the schema; False when another process holds the file right now.
        Switching to WAL and creating tables can answer "database is locked" at once, without
        waiting out the busy timeout (SQLite does not wait where waiting could deadlock), so
        the caller tries again until its deadline."""
        with closing(self._connect()) as conn:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            except sqlite3.OperationalError as exc:
                if final or "locked" not in str(exc) and "busy" not in str(exc):
                    raise self._unusable(exc) from exc
                return False
            except sqlite3.DatabaseError as exc:
                raise self._unusable(exc) from exc
        return True

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so writers queue on the busy
        timeout instead of failing halfway."""
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from exc

    def _read(self, sql: str, args: tuple = ()) -> list[LedgerEntry]:
        try:
            with self._connection() as conn:
                return [self._as_seen(LedgerEntry(**dict(row))) for row in conn.execute(sql, args)]
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from exc

    def turn_lock_path(self, digest: str) -> str:
        """The lock file that runs of the fingerprint `digest` hold, between processes, from
        their lookup until their create is recorded (remote/reattach.py `LedgerRun.turn`)."""
        bucket = int(digest[:8], 16) % TURN_LOCK_FILES
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), "turns", f"{bucket:04d}.lock")

    def _as_seen(self, row: LedgerEntry) -> LedgerEntry:
        """A SUBMITTING entry of another owner is MAY_EXIST wherever it is read (in a run's
        lookup, and in the task panel, which can then clear it) once no process holds its
        turn: its owner stopped mid-create. While its turn is held, another ComfyUI on this
        user folder is sending that create right now: it stays SUBMITTING, not clearable."""
        if row.status == SUBMITTING and row.owner != self.owner \
                and not file_lock.held_elsewhere(self.turn_lock_path(row.fingerprint)):
            return _replace(row, status=MAY_EXIST,
                            message=row.message or "ComfyUI stopped while this task's create was being sent.")
        return row

    def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change()
        except Exception:  # noqa: BLE001 - telling the panel must never fail a run
            log.exception("task ledger listener failed")

    # -- reading ----------------------------------------------------------------------------

    def get(self, entry: int) -> LedgerEntry | None:
        rows = self._read("SELECT * FROM tasks WHERE entry = ?", (int(entry),))
        return rows[0] if rows else None

    def for_task(self, task_id: str) -> LedgerEntry | None:
        """The newest entry of a task id (e.g. to find the key that created it)."""
        rows = self._read("SELECT * FROM tasks WHERE task_id = ? ORDER BY entry DESC LIMIT 1", (str(task_id),))
        return rows[0] if rows else None

    def entries(self, limit: int = 200) -> list[LedgerEntry]:
        """The newest entries first."""
        return self._read("SELECT * FROM tasks ORDER BY entry DESC LIMIT ?", (int(limit),))

    def lookup(self, fingerprint: RunFingerprint) -> LedgerEntry | None:
        """The entry a run with this fingerprint must use instead of creating a task: one
        still on its way, one that may exist, or one finished with outputs still valid.
        A SUBMITTING entry of another process (it died mid-create) is read as MAY_EXIST."""
        now = self._clock()
        for row in self._read("SELECT * FROM tasks WHERE fingerprint = ? ORDER BY entry DESC",
                              (fingerprint.digest(),)):
            if row.status in ENDED_WITHOUT_OUTPUTS:
                return None  # the newest attempt failed or was cancelled: a new run may create
            if row.status == "SUCCESS":
                fresh = (row.finished_at or row.updated_at) > now - (self.lifetime - REUSE_MARGIN)
                return row if fresh else None
            return row
        return None

    # -- writing ----------------------------------------------------------------------------

    def begin(self, fingerprint: RunFingerprint, *, key_hint: str | None = None, prompt_id: str | None = None,
              node_id: str | None = None, task_id: str | None = None) -> int:
        """Record a run about to send its create; returns the entry number. `task_id` when
        the id is chosen before sending (a native prompt's client-chosen prompt id)."""
        now = self._clock()
        if now - self._pruned_at > PRUNE_EVERY:
            self.prune()
        fp = fingerprint
        overrides = json.dumps([list(o) for o in fp.overrides], ensure_ascii=False, default=repr)
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT INTO tasks (fingerprint, site, account, kind, workflow_id, instance_type, seed, overrides,"
                " task_id, key_hint, status, prompt_id, node_id, owner, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fp.digest(), fp.site, fp.account, fp.kind, fp.workflow_id, fp.instance_type, str(fp.seed),
                 overrides, task_id, key_hint, SUBMITTING, prompt_id, node_id, self.owner, now, now))
            entry = int(cur.lastrowid)
        self._changed()
        return entry

    def created(self, entry: int, task_id: str, status: str = "QUEUED") -> None:
        self._update(entry, task_id=str(task_id), status=status)

    def moved(self, entry: int, status: str) -> None:
        """A state change seen while waiting (not for finished states: see finished)."""
        self._update(entry, status=status, only_if_waiting=True)

    def finished(self, entry: int, status: str, *, result: TaskResult | None = None, message: str = "",
                 outputs: list[dict] | None = None) -> None:
        """`result` for a task; `outputs` (a list of `{url, file_type, node_id, ...}`, the
        shape the task panel reads) for results that are not a TaskResult (native prompts)."""
        cost = result.cost.describe() if result is not None else None
        if result is not None:
            outputs = [{"url": o.url, "file_type": o.file_type, "node_id": o.node_id} for o in result.outputs]
        outputs = json.dumps(outputs, ensure_ascii=False) if outputs is not None else None
        self._update(entry, status=status, cost=cost, outputs=outputs, message=message[:2000] or None,
                     finished_at=self._clock(), keep_success=status == "CANCEL")

    def uncertain(self, entry: int, message: str) -> None:
        """The create was sent and its reply lost: a billed task may exist."""
        self._update(entry, status=MAY_EXIST, message=message[:2000])

    def forget(self, entry: int) -> bool:
        """Remove an entry (a create that created nothing, or the user clearing it)."""
        with self._transaction() as conn:
            gone = conn.execute("DELETE FROM tasks WHERE entry = ?", (int(entry),)).rowcount > 0
        if gone:
            self._changed()
        return gone

    def prune(self) -> int:
        """Drop entries whose outputs have expired (finished over a lifetime ago) and entries
        not touched for a lifetime; returns how many."""
        self._pruned_at = self._clock()
        cutoff = self._pruned_at - self.lifetime
        with self._transaction() as conn:
            gone = conn.execute("DELETE FROM tasks WHERE COALESCE(finished_at, updated_at) < ?", (cutoff,)).rowcount
        if gone:
            log.info("task ledger: pruned %d entr%s older than %.0f h", gone, "y" if gone == 1 else "ies",
                     self.lifetime / 3600)
        return gone

    def _update(self, entry: int, *, only_if_waiting: bool = False, keep_success: bool = False,
                **fields: Any) -> None:
        """`keep_success`: a SUCCESS stays (a task that succeeded was not cancelled: e.g. a stop
        while its outputs are fetched again must not turn it into CANCEL)."""
        fields["updated_at"] = self._clock()
        assignments = ", ".join(f"{name} = COALESCE({name}, ?)" if name in _SET_ONCE else f"{name} = ?"
                                for name in fields)
        sql = f"UPDATE tasks SET {assignments} WHERE entry = ?"
        if only_if_waiting:
            sql += f" AND status IN ({', '.join('?' * len(WAITING))})"
        if keep_success:
            sql += " AND status != 'SUCCESS'"
        args = (*fields.values(), int(entry), *(WAITING if only_if_waiting else ()))
        with self._transaction() as conn:
            changed = conn.execute(sql, args).rowcount > 0
        if changed:
            self._changed()


def _replace(row: LedgerEntry, **fields: Any) -> LedgerEntry:
    return LedgerEntry(**{**asdict(row), **fields})
