"""The task ledger on its own: fingerprints, what a run re-attaches to, several processes
writing at once, a crash mid-write, pruning. Real SQLite files, real child processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from support.pack import pack_module

ledger_mod = pack_module("client.ledger")
records = pack_module("client.records")
NodeOverride = pack_module("client.overrides").NodeOverride
TaskLedger, RunFingerprint = ledger_mod.TaskLedger, ledger_mod.RunFingerprint
TESTS_DIR = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def fingerprint(seed: int = 1, value: str = "api/abc.png", **kw) -> RunFingerprint:
    args = dict(site="http://127.0.0.1:1", account="default", kind="workflow", workflow_id="42",
                instance_type="default", overrides=[NodeOverride("1", "image", value)], seed=seed)
    args.update(kw)
    return RunFingerprint.of(**args)


def result(task_id: str = "1900000000000000001") -> records.TaskResult:
    return records.TaskResult(task_id, [records.TaskOutput("https://cdn.example/x.png", "png", "9")],
                              records.TaskCost(seconds=3.0, coins=17.0))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(tmp_path, clock):
    return TaskLedger(tmp_path / "runninghub" / "tasks.sqlite3", clock=clock)


def test_fingerprint_is_stable_and_tells_runs_apart():
    base = fingerprint()
    assert base.digest() == fingerprint().digest()
    reordered = fingerprint(overrides=[NodeOverride("2", "text", "a"), NodeOverride("1", "image", "api/abc.png")])
    assert reordered.digest() == fingerprint(overrides=[NodeOverride("1", "image", "api/abc.png"),
                                                         NodeOverride("2", "text", "a")]).digest()
    for other in (fingerprint(seed=2), fingerprint(value="api/def.png"), fingerprint(instance_type="plus"),
                  fingerprint(account="work"), fingerprint(kind="ai-app"), fingerprint(workflow_id="43"),
                  fingerprint(site="http://127.0.0.1:2"), fingerprint(run_index=1),
                  fingerprint(overrides=[NodeOverride("1", "image", "api/abc.png", from_text=True)])):
        assert other.digest() != base.digest()
    assert fingerprint(overrides=[NodeOverride("1", "seed", 1)]).digest() != \
        fingerprint(overrides=[NodeOverride("1", "seed", "1")]).digest()  # types count


def test_a_task_on_its_way_or_finished_is_found_failed_or_cancelled_is_not(ledger):
    fp = fingerprint()
    assert ledger.lookup(fp) is None
    entry = ledger.begin(fp, key_hint="…abcd", prompt_id="p1", node_id="13")
    assert ledger.lookup(fp).status == "SUBMITTING"  # our own create in flight
    ledger.created(entry, "1900000000000000001")
    ledger.moved(entry, "RUNNING")
    found = ledger.lookup(fp)
    assert (found.task_id, found.status, found.key_hint, found.prompt_id) == \
        ("1900000000000000001", "RUNNING", "…abcd", "p1")
    ledger.finished(entry, "SUCCESS", result=result())
    found = ledger.lookup(fp)
    assert found.status == "SUCCESS" and found.cost == "17 coins, 3 s"
    assert json.loads(found.outputs) == [{"url": "https://cdn.example/x.png", "file_type": "png", "node_id": "9"}]
    ledger.moved(entry, "RUNNING")  # a late progress report does not undo the end
    ledger.finished(entry, "CANCEL", message="stopped while its outputs were fetched again")  # nor a late stop
    assert ledger.get(entry).status == "SUCCESS" and ledger.get(entry).message is None
    assert ledger.lookup(fingerprint(seed=2)) is None
    assert ledger.for_task("1900000000000000001").entry == entry and ledger.for_task("1") is None

    again = ledger.begin(fp)
    ledger.created(again, "1900000000000000002")
    ledger.finished(again, "FAILED", message="remote node 2 failed")
    assert ledger.lookup(fp) is None  # the newest attempt failed: queueing again creates


def test_a_lost_create_reply_is_may_exist_and_so_is_a_create_of_a_dead_process(tmp_path, ledger):
    fp = fingerprint()
    entry = ledger.begin(fp)
    ledger.uncertain(entry, "reply lost")
    assert (ledger.lookup(fp).status, ledger.lookup(fp).message) == ("MAY_EXIST", "reply lost")

    other_fp = fingerprint(seed=9)
    ledger.begin(other_fp)  # this process is still sending it
    restarted = TaskLedger(ledger.path)  # another process, or the same after a restart
    found = restarted.lookup(other_fp)
    assert found.status == "MAY_EXIST" and "stopped while" in found.message
    # the task panel reads it so too (it can then clear it); its own process still sees it being sent
    assert [e.status for e in restarted.entries()] == ["MAY_EXIST", "MAY_EXIST"]
    assert restarted.get(found.entry).status == "MAY_EXIST" and ledger.get(found.entry).status == "SUBMITTING"


def test_a_create_that_created_nothing_leaves_no_entry(ledger):
    entry = ledger.begin(fingerprint())
    assert ledger.forget(entry) is True
    assert ledger.lookup(fingerprint()) is None and ledger.entries() == []


def test_pruning_and_the_reuse_window(ledger, clock):
    fp = fingerprint()
    entry = ledger.begin(fp)
    ledger.created(entry, "1900000000000000001")
    ledger.finished(entry, "SUCCESS", result=result())
    clock.now += ledger_mod.OUTPUT_LIFETIME - ledger_mod.REUSE_MARGIN - 60
    assert ledger.lookup(fp) is not None
    ledger.finished(entry, "SUCCESS", result=result())  # a re-attach does not extend the outputs' life
    clock.now += 120  # the output URLs are about to expire: run again instead
    assert ledger.lookup(fp) is None
    running = ledger.begin(fingerprint(seed=2))
    clock.now += ledger_mod.REUSE_MARGIN
    assert ledger.prune() == 1
    assert [e.entry for e in ledger.entries()] == [running]
    clock.now += ledger_mod.OUTPUT_LIFETIME + 1
    TaskLedger(ledger.path, clock=clock).entries()  # opening prunes
    assert ledger.entries() == []

    old = ledger.begin(fingerprint(seed=3))
    clock.now += ledger_mod.OUTPUT_LIFETIME + 1
    ledger.begin(fingerprint(seed=4))  # a process that runs for days prunes as it goes
    assert old not in [e.entry for e in ledger.entries()]


def test_changes_are_told_to_the_listener(tmp_path, clock):
    seen = []
    book = TaskLedger(tmp_path / "t.sqlite3", clock=clock, on_change=lambda: seen.append(book.entries()))
    entry = book.begin(fingerprint())
    book.created(entry, "1")
    book.forget(entry)
    book.forget(entry)  # nothing changed: nothing told
    assert [[e.status for e in entries] for entries in seen] == [["SUBMITTING"], ["QUEUED"], []]


def test_the_view_holds_no_key(ledger, clock):
    secret = "0123456789abcdef0123456789abcdef"
    entry = ledger.begin(fingerprint(), key_hint="…cdef", prompt_id="p")
    clock.now += 5
    view = ledger.get(entry).view(clock.now)
    assert view["elapsed"] == 5.0 and view["key"] == "…cdef"
    assert secret not in json.dumps(view) and secret not in Path(ledger.path).read_bytes().decode("latin-1")


def test_a_damaged_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ledger_mod.LedgerError, match="move it away"):
        TaskLedger(path).lookup(fingerprint())


def test_one_kept_connection_in_wal_with_synchronous_normal(ledger):
    """Writes are cheap: one connection kept open (no WAL checkpoint at every close) with
    synchronous=NORMAL, which keeps every committed write through a kill of the process
    (test_a_process_killed_at_any_moment_keeps_every_committed_entry)."""
    entry = ledger.begin(fingerprint())
    ledger.created(entry, "1")
    with ledger._connection() as conn:
        kept = conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    ledger.finished(entry, "SUCCESS", outputs=[])
    with ledger._connection() as conn:
        assert conn is kept


def test_a_ledger_file_moved_away_in_use_is_made_anew(ledger):
    first = ledger.begin(fingerprint())
    os.replace(ledger.path, ledger.path + ".damaged")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(ledger.path + suffix):
            os.replace(ledger.path + suffix, ledger.path + ".damaged" + suffix)
    second = ledger.begin(fingerprint(seed=2))
    assert [e.status for e in ledger.entries()] == ["SUBMITTING"] and ledger.get(second) is not None
    assert TaskLedger(ledger.path + ".damaged").get(first).status == "MAY_EXIST"  # as another process reads it


def test_threads_share_the_connection_safely(ledger):
    errors: list[BaseException] = []

    def work(tag: int) -> None:
        try:
            for i in range(40):
                entry = ledger.begin(fingerprint(seed=tag * 1000 + i))
                ledger.created(entry, f"{tag}-{i}")
                assert ledger.get(entry).task_id == f"{tag}-{i}"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(ledger.entries(limit=1000)) == 160


# -- several processes ------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from support.pack import pack_module
    L = pack_module("client.ledger")
    NodeOverride = pack_module("client.overrides").NodeOverride
    book = L.TaskLedger({path!r})
    tag, count = sys.argv[1], int(sys.argv[2])
    for i in range(count):
        fp = L.RunFingerprint.of(site="s", account=tag, kind="workflow", workflow_id="1", instance_type="default",
                                 overrides=[NodeOverride("1", "text", str(i))], seed=i)
        entry = book.begin(fp, prompt_id=tag)
        book.created(entry, f"{{tag}}-{{i}}")
        print(entry, flush=True)
        if sys.argv[3:] == ["crash-in-transaction"]:
            with book._transaction() as conn:
                conn.execute("UPDATE tasks SET status = 'HALF' WHERE entry = ?", (entry,))
                os._exit(3)
""")


def child(tmp_path, path, tag: str, count: int, *extra: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS_DIR), path=str(path)))
    return subprocess.Popen([sys.executable, str(script), tag, str(count), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def integrity(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    procs = [child(tmp_path, path, tag, 150) for tag in ("a", "b")]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    entries = TaskLedger(path).entries(limit=1000)
    assert len(entries) == 300 and all(e.status == "QUEUED" for e in entries)
    assert sorted(e.task_id for e in entries) == sorted(f"{t}-{i}" for t in "ab" for i in range(150))
    assert integrity(path) == "ok"


def test_openers_racing_to_create_a_new_ledger_all_get_it(tmp_path):
    """Switching a new file to WAL answers "database is locked" at once to a second opener
    (no busy wait): three ComfyUI processes or threads opening a fresh ledger together must
    all get it. Before the fix about 2 % of these races failed."""
    failures: list[str] = []
    for n in range(300):
        path = tmp_path / f"race-{n}.sqlite3"
        barrier = threading.Barrier(3)

        def open_it() -> None:
            barrier.wait()
            try:
                TaskLedger(path).entries()
            except ledger_mod.LedgerError as exc:
                failures.append(str(exc))

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_a_crash_inside_a_write_loses_only_that_write(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    p = child(tmp_path, path, "c", 1, "crash-in-transaction")
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 3
    [entry] = TaskLedger(path).entries()
    assert entry.entry == int(out.split()[0]) and entry.status == "QUEUED"  # the half write never landed
    assert integrity(path) == "ok"


def test_a_process_killed_at_any_moment_keeps_every_committed_entry(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    p = child(tmp_path, path, "k", 100000)
    committed = []
    deadline = time.monotonic() + 60
    while len(committed) < 40 and time.monotonic() < deadline:
        committed.append(int(p.stdout.readline()))
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    p.stderr.close()
    assert len(committed) >= 40
    assert integrity(path) == "ok"
    kept = {e.entry: e for e in TaskLedger(path).entries(limit=100000)}
    assert all(kept[n].status == "QUEUED" for n in committed)
