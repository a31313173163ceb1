"""remote/followers.py on its own: a lookup waits for a stopped run of this process to finish
with its entry, and only for that."""

from __future__ import annotations

import threading
import time

from support.pack import pack_module

followers = pack_module("remote.followers")


def test_a_run_not_told_to_stop_is_not_waited_for(tmp_path):
    running = lambda: False  # noqa: E731
    followers.follow(str(tmp_path), 1, running)
    try:
        started = time.monotonic()
        assert followers.wait_if_stopping(str(tmp_path), 1) is False
        assert time.monotonic() - started < 0.5
        assert followers.wait_if_stopping(str(tmp_path), 2) is False  # nobody follows entry 2
    finally:
        followers.unfollow(str(tmp_path), 1, running)


def test_a_stopped_run_is_waited_for_until_it_is_done(tmp_path):
    stopped = lambda: True  # noqa: E731
    followers.follow(str(tmp_path), 3, stopped)
    threading.Timer(0.3, followers.unfollow, (str(tmp_path), 3, stopped)).start()  # its cancel recorded
    started = time.monotonic()
    assert followers.wait_if_stopping(str(tmp_path), 3) is True
    assert 0.25 < time.monotonic() - started < 5


def test_the_wait_ends_when_the_caller_stops_or_at_the_limit(tmp_path):
    stopped = lambda: True  # noqa: E731
    followers.follow(str(tmp_path), 4, stopped)
    try:
        assert followers.wait_if_stopping(str(tmp_path), 4, gave_up=lambda: True) is False
        started = time.monotonic()
        assert followers.wait_if_stopping(str(tmp_path), 4, limit=0.2) is False
        assert time.monotonic() - started < 2
    finally:
        followers.unfollow(str(tmp_path), 4, stopped)


def test_a_twin_that_goes_on_does_not_hold_up_the_lookup(tmp_path):
    """Two runs follow one entry (twin nodes): only the stopped one is waited for, and its
    leaving does not take the other's registration with it."""
    going_on, stopped = (lambda: False), (lambda: True)
    followers.follow(str(tmp_path), 5, going_on)
    followers.follow(str(tmp_path), 5, stopped)
    threading.Timer(0.2, followers.unfollow, (str(tmp_path), 5, stopped)).start()
    assert followers.wait_if_stopping(str(tmp_path), 5) is True
    followers.follow(str(tmp_path), 5, stopped)  # stopped again later: still waited for
    try:
        assert followers.wait_if_stopping(str(tmp_path), 5, limit=0.1) is False
    finally:
        followers.unfollow(str(tmp_path), 5, stopped)
        followers.unfollow(str(tmp_path), 5, going_on)
