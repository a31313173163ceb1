"""client/stop.py: one stop per run, found by every wait below it, shielded for the cancel."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.pack import pack_module

stop = pack_module("client.stop")


def test_the_runs_stop_reaches_nested_code_and_copied_contexts():
    flag = threading.Event()
    seen = []
    with stop.stop_when(flag.is_set):
        assert not stop.stop_requested()
        flag.set()
        with stop.stop_when(None):  # None keeps the enclosing run's stop
            assert stop.stop_requested()
        worker = threading.Thread(target=contextvars.copy_context().run, args=(lambda: seen.append(
            stop.stop_requested()),))
        worker.start()
        worker.join()
    assert seen == [True]
    assert not stop.stop_requested()  # outside the run


def test_a_shielded_block_ignores_the_stop():
    with stop.stop_when(lambda: True):
        assert stop.stop_requested()
        with stop.shielded():
            assert not stop.stop_requested()


def test_pause_ends_early_on_a_stop_and_sleeps_in_ticks():
    slept = []
    calls = iter([False, False, True])
    with stop.stop_when(lambda: next(calls, True)):
        assert stop.pause(10.0, sleep=slept.append) is False
    assert slept == [stop.TICK, stop.TICK]


ABANDONING_PROCESS = """
import sys, time
sys.path.insert(0, {tests!r})
from support.pack import pack_module
stop, errors = pack_module("client.stop"), pack_module("client.errors")
started = time.monotonic()
with stop.stop_when(lambda: time.monotonic() - started > 0.2):
    try:
        stop.stoppable(lambda: time.sleep(60), what="reply that never comes")
    except errors.WaitInterrupted as exc:
        print(exc, flush=True)
"""


def test_a_call_abandoned_by_a_stop_neither_blocks_the_run_nor_the_process_exit(tmp_path):
    """The stop ends the wait at once; the abandoned call (a request hanging for its read
    timeout) must not hold up the interpreter's exit either, as a thread pool's would."""
    script = tmp_path / "abandon.py"
    script.write_text(ABANDONING_PROCESS.format(tests=str(Path(__file__).resolve().parents[1])))
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Interrupted during the reply that never comes."
    assert time.monotonic() - started < 20  # the call sleeps 60 s
