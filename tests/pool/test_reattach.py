"""remote.run with the task ledger, against the simulator over real HTTP: what a second run
with the same fingerprint does in every state the first one can leave behind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from support.pack import pack_module
from support.simulator import WORKFLOWS

from pool_support import FAST, make_pool, run_mod, seed_override, wait_until

errors = pack_module("client.errors")
ledger_mod = pack_module("client.ledger")
reattach = pack_module("remote.reattach")


@pytest.fixture
def book(tmp_path):
    return ledger_mod.TaskLedger(tmp_path / "tasks.sqlite3")


def run(pool, book, *, seed: int = 1, value: int = 5, run_index: int = 0, **kw):
    journal = reattach.RunJournal(book, account="default", seed=seed, prompt_id="p", node_id="13",
                                  run_index=run_index)
    kw.setdefault("poll_policy", FAST)
    return run_mod.run_and_wait(pool, kind="workflow", workflow_id=WORKFLOWS["noise"], overrides=[seed_override(value)],
                                journal=journal, **kw)


def test_a_finished_task_is_fetched_again_and_a_new_seed_creates(sim, book):
    pool = make_pool(sim, [0])
    first = run(pool, book)
    again = run(pool, book)
    assert again.task_id == first.task_id and again.result.outputs == first.result.outputs
    assert sim.count("create") == 1
    assert run(pool, book, seed=2).task_id != first.task_id and sim.count("create") == 2
    assert run(pool, book, value=6).task_id != first.task_id and sim.count("create") == 3


def test_equal_items_of_a_list_mapped_run_are_runs_of_their_own(sim, book):
    pool = make_pool(sim, [0])
    first, second = run(pool, book, run_index=0), run(pool, book, run_index=1)
    assert first.task_id != second.task_id and sim.count("create") == 2
    assert run(pool, book, run_index=1).task_id == second.task_id and sim.count("create") == 2


def test_twin_runs_at_once_share_one_task(sim, book):
    sim.configure(run_seconds=1.0)
    pool = make_pool(sim, [0])
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(pool, book))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2 and results[0].task_id == results[1].task_id
    assert sim.count("create") == 1


def test_a_run_that_stopped_waiting_is_picked_up_by_the_next(sim, book):
    sim.configure(run_seconds=2.0)
    pool = make_pool(sim, [0, 1])
    with pytest.raises(errors.TaskTimeoutError):
        run(pool, book, poll_policy=polling_budget(0.3))
    [entry] = book.entries()
    assert entry.status in ("QUEUED", "RUNNING") and entry.key_hint
    fresh_pool = make_pool(sim, [1, 0])  # as after a restart: nothing remembered, keys in another order
    statuses = sim.count("status")
    task = run(fresh_pool, book)
    assert task.task_id == entry.task_id and task.client.key.hint == entry.key_hint
    assert sim.count("create") == 1 and sim.count("status") == statuses
    assert book.get(entry.entry).status == "SUCCESS"


def polling_budget(seconds: float):
    polling = pack_module("client.polling")
    return polling.with_budgets(FAST, queued=seconds, running=seconds)


def test_a_lost_create_reply_blocks_the_next_run_until_cleared(sim, book):
    pool = make_pool(sim, [0])
    sim.fault("create", "reset_after_commit")
    with pytest.raises(errors.SubmissionUncertainError):
        run(pool, book)
    with pytest.raises(ledger_mod.TaskMayExistError) as caught:
        run(pool, book)
    text = str(caught.value)
    assert "127.0.0.1" in text and "change the seed" in text and "task panel" in text and "…" in text
    assert sim.keys[0] not in text
    assert sim.count("create") == 1
    [entry] = book.entries()
    book.forget(entry.entry)  # the user cleared it in the panel
    run(pool, book)
    assert sim.count("create") == 2


def test_a_stopped_run_cancels_and_the_next_creates(sim, book):
    sim.configure(run_seconds=30.0)
    pool = make_pool(sim, [0])
    stop = threading.Event()

    def stop_once_created():
        wait_until(lambda: book.entries() and book.entries()[0].status != "SUBMITTING", timeout=30)
        stop.set()

    threading.Thread(target=stop_once_created, daemon=True).start()
    with pytest.raises(errors.WaitInterrupted):
        run(pool, book, should_stop=stop.is_set)
    assert book.entries()[0].status == "CANCEL"
    sim.configure(run_seconds=0.2)
    run(pool, book)
    assert sim.count("create") == 2


def test_a_stop_whose_cancel_fails_keeps_the_task_and_the_next_run_reattaches(sim, book):
    """The network is gone when the user interrupts: the cancel gives up. The task may run
    on and bill, so its entry stays as it was (the task panel can still cancel it) and the
    next queue waits for it instead of paying for a second one."""
    sim.configure(run_seconds=3.0)
    pool = make_pool(sim, [0])
    stop = threading.Event()

    def stop_once_created():
        wait_until(lambda: book.entries() and book.entries()[0].status != "SUBMITTING", timeout=30)
        sim.fault("cancel", "reset_before", count=20)
        stop.set()

    threading.Thread(target=stop_once_created, daemon=True).start()
    with pytest.raises(errors.WaitInterrupted) as caught:
        run(pool, book, should_stop=stop.is_set)
    assert not caught.value.cancelled and "task panel" in str(caught.value)
    [entry] = book.entries()
    assert entry.status in ("QUEUED", "RUNNING") and sim.count("cancel") >= 1
    sim.clear_faults()
    task = run(pool, book)
    assert task.task_id == entry.task_id and sim.count("create") == 1
    assert book.get(entry.entry).status == "SUCCESS"


def test_a_stop_while_fetching_a_finished_task_again_keeps_its_success(sim, book):
    """Re-attached to a task that succeeded, the run fetches its outputs again; stopped
    meanwhile (the outputs reply is slow), it cancels nothing and the success stays reusable."""
    pool = make_pool(sim, [0])
    first = run(pool, book)
    sim.fault("outputs", "reset_before", count=50)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(errors.WaitInterrupted) as caught:
        run(pool, book, should_stop=stop.is_set)
    assert not caught.value.cancelled
    assert sim.count("cancel") == 0 and [e.status for e in book.entries()] == ["SUCCESS"]
    sim.clear_faults()
    assert run(pool, book).task_id == first.task_id and sim.count("create") == 1


def test_a_task_created_with_part_of_its_graph_rejected_is_followed_not_forgotten(sim, book):
    """The remote ComfyUI rejects one output's branch and queues the rest: RunningHub answers
    with a task id and node errors. That task runs and bills, so the run follows it, says
    what was rejected, records it, and the same run again reuses it."""
    pool = make_pool(sim, [0])
    overrides_mod = pack_module("client.overrides")
    journal = reattach.RunJournal(book, account="default", seed=1)
    warnings = []

    def scale_run():
        return run_mod.run_and_wait(pool, kind="workflow", workflow_id=WORKFLOWS["scale"],
                                    overrides=[overrides_mod.NodeOverride("2", "scale_by", -1.0)], poll_policy=FAST,
                                    journal=journal, on_warning=warnings.append)

    task = scale_run()
    assert {o.node_id for o in task.result.outputs} == {"5"}  # the branch that passed
    assert len(warnings) == 1 and "rejected part of the graph" in warnings[0] and "scale_by" in warnings[0]
    [entry] = book.entries()
    assert entry.status == "SUCCESS" and entry.task_id == task.task_id
    assert scale_run().task_id == task.task_id and sim.count("create") == 1


@pytest.mark.parametrize("lock_seconds", [2.5, None])
def test_a_ledger_that_cannot_record_a_created_task_does_not_end_its_run(sim, book, monkeypatch, caplog,
                                                                          lock_seconds):
    """Another process holds the ledger locked longer than a writer waits, just while the
    create is in flight: the task exists and bills, so the run follows it to its outputs
    (a warning says so). A lock that ends before the run does (2.5 s): the create is recorded
    late and the same run again reuses the task. One that outlasts the run: the entry stays
    as begun, and the same run again asks the user (the task may exist) instead of creating
    a second one."""
    monkeypatch.setattr(ledger_mod, "BUSY_TIMEOUT", 0.3)
    sim.configure(run_seconds=3.0)
    sim.fault("create", "delay", seconds=1.5)
    pool = make_pool(sim, [0])
    release = threading.Event()

    def lock_while_creating():
        wait_until(lambda: book.entries() and book.entries()[0].status == "SUBMITTING", timeout=30)
        with sqlite3.connect(book.path, isolation_level=None) as conn:
            conn.execute("BEGIN EXCLUSIVE")
            release.wait(lock_seconds or 60)
            conn.execute("ROLLBACK")

    locker = threading.Thread(target=lock_while_creating, daemon=True)
    locker.start()
    try:
        task = run(pool, book)
    finally:
        release.set()
        locker.join(10)
    assert task.result is not None and sim.count("create") == 1
    assert "could not record RunningHub task " + task.task_id in caplog.text
    if lock_seconds:
        [entry] = book.entries()
        assert (entry.status, entry.task_id) == ("SUCCESS", task.task_id)
        assert run(pool, book).task_id == task.task_id
    else:
        assert [e.status for e in book.entries()] == ["SUBMITTING"]
        with pytest.raises(ledger_mod.TaskMayExistError):
            run(pool, book)
    assert sim.count("create") == 1


def test_a_failed_task_is_not_reused(sim, book):
    pool = make_pool(sim, [0])
    journal = reattach.RunJournal(book, account="default", seed=1)
    for _ in range(2):
        with pytest.raises(errors.TaskFailedError):
            run_mod.run_and_wait(pool, kind="workflow", workflow_id=WORKFLOWS["fail"], overrides=[],
                                 poll_policy=FAST, journal=journal)
    assert sim.count("create") == 2 and [e.status for e in book.entries()] == ["FAILED", "FAILED"]


def test_a_task_runninghub_forgot_is_created_again(sim, book):
    pool = make_pool(sim, [0])
    run(pool, book)
    sim.reset()  # the simulator forgets every task: 807 for the old id
    task = run(pool, book)
    assert sim.count("create") == 1 and task.result is not None
    assert [e.status for e in book.entries()] == ["SUCCESS", "FAILED"]


def test_a_refused_create_leaves_no_entry_and_a_garbled_reply_is_may_exist(sim, book):
    pool = make_pool(sim, [0])
    sim.fault("create", "api_error", code=416)  # out of coins: a definite no
    with pytest.raises(errors.InsufficientFundsError):
        run(pool, book)
    assert book.entries() == []
    sim.fault("create", "html_200", commit=True)  # a proxy page where the reply should be: it may exist
    with pytest.raises(errors.RunningHubError):
        run(pool, book)
    assert [e.status for e in book.entries()] == ["MAY_EXIST"]
    with pytest.raises(ledger_mod.TaskMayExistError):
        run(pool, book)
    assert sim.count("create") == 2


@pytest.fixture
def shutdown():
    """client.stop's process-wide shutdown, undone after the test (the process goes on)."""
    stop = pack_module("client.stop")
    yield stop
    stop._shutdown.clear()
    stop._leave_tasks_running = False


def test_a_task_left_running_at_shutdown_is_reattached_by_the_next_run(sim, book, shutdown):
    sim.configure(run_seconds=3.0)
    pool = make_pool(sim, [0])

    def shut_down_once_created():
        wait_until(lambda: book.entries() and book.entries()[0].status != "SUBMITTING", timeout=30)
        shutdown.shut_down(leave_tasks_running=True)  # RUNNINGHUB_ON_SHUTDOWN=leave

    threading.Thread(target=shut_down_once_created, daemon=True).start()
    with pytest.raises(errors.WaitInterrupted):
        run(pool, book)
    [entry] = book.entries()
    assert entry.status in ("QUEUED", "RUNNING") and sim.count("cancel") == 0
    shutdown._shutdown.clear()  # the next process
    task = run(pool, book)
    assert task.task_id == entry.task_id and sim.count("create") == 1


TWIN_PROCESS = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from support.pack import pack_module
    L, reattach = pack_module("client.ledger"), pack_module("remote.reattach")
    NodeOverride = pack_module("client.overrides").NodeOverride
    journal = reattach.RunJournal(L.TaskLedger({path!r}), account="default", seed=1)
    run = journal.for_run(pack_module("client.sites").resolve_site(base_url="http://127.0.0.1:1"), "workflow", "42",
                          "default", [NodeOverride("1", "seed", 5)])
    while time.time() < {start}:  # both processes look up at the same moment
        time.sleep(0.001)
    with run.turn():
        if run.earlier() is None:
            entry = journal.ledger.begin(run.fingerprint)
            time.sleep(0.5)  # the create on its way
            journal.ledger.created(entry, sys.argv[1])
            print("created", flush=True)
        else:
            print("found", flush=True)
""")


def test_two_comfyuis_on_one_user_folder_take_turns_on_the_same_run(tmp_path):
    """Two processes queue the same run at the same moment on one task ledger: the second
    waits for the first's create to be recorded and finds its task (it created its own)."""
    script = tmp_path / "twin.py"
    script.write_text(TWIN_PROCESS.format(tests=str(Path(__file__).resolve().parents[1]),
                                          path=str(tmp_path / "tasks.sqlite3"), start=time.time() + 2.0))
    procs = [subprocess.Popen([sys.executable, str(script), f"task-{n}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert sorted(outs) == ["created", "found"]
    assert len(ledger_mod.TaskLedger(tmp_path / "tasks.sqlite3").entries()) == 1


def test_an_error_inside_a_turn_comes_out_as_it_is(book):
    """Only the wait for another process's turn becomes "interrupted while another run was
    submitting": a timeout raised by the run itself (a socket's, say) is not renamed."""
    overrides_mod = pack_module("client.overrides")
    sites = pack_module("client.sites")
    run_ = reattach.RunJournal(book, account="default", seed=1).for_run(
        sites.resolve_site(base_url="http://127.0.0.1:1"), "workflow", "42", "default",
        [overrides_mod.NodeOverride("1", "seed", 5)])
    with pytest.raises(TimeoutError, match="the run's own"):
        with run_.turn():
            raise TimeoutError("the run's own")


def test_a_user_folder_without_lock_files_still_runs(sim, book, caplog):
    """Where no lock file can be made (here the lock folder's name is taken by a file; a
    read-only folder or a network filesystem without locks does the same), runs go on with
    the in-process turn only, as before there was a lock, and the log says so once."""
    (Path(book.path).parent / "turns").write_text("not a folder")
    pool = make_pool(sim, [0])
    first = run(pool, book)
    assert run(pool, book).task_id == first.task_id and sim.count("create") == 1
    assert caplog.text.count("no lock file can be used") == 1
