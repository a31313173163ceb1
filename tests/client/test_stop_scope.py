"""client/stop.py: one stop per run, found by every wait below it, shielded for the cancel."""

from __future__ import annotations

import contextvars
import threading

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
