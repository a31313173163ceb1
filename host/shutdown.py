"""Ctrl+C and SIGTERM: stop every run, cancel the remote tasks being waited on (or leave
them running), then let ComfyUI exit as it would have, within 2 s.

Without this, SIGINT ended ComfyUI's server but the interpreter then joined the pack's
worker threads, which waited until the remote task ended (up to max_wait_minutes), and a
SIGTERM killed the process with its tasks still running and billed. The handler stops
every run (client/stop.py), waits up to `GRACE` s for the waits in client/waiting.py to
end (each cancels its own task exactly once), and then hands the signal to what was
installed before (ComfyUI's KeyboardInterrupt for SIGINT, the default exit for SIGTERM).

`RUNNINGHUB_ON_SHUTDOWN=leave` leaves the remote tasks running instead (re-attach later
with RH Fetch Outputs and the task id in the log).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from ..client.stop import shut_down, shutting_down
from ..client.waiting import WAITING

log = logging.getLogger("runninghub_bridge.host")

ENV_ON_SHUTDOWN = "RUNNINGHUB_ON_SHUTDOWN"  # cancel (default) | leave
GRACE = 1.5  # seconds for the cancels; ComfyUI still exits within 2 s
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_installed = False


def leave_tasks_running() -> bool:
    value = os.environ.get(ENV_ON_SHUTDOWN, "cancel").strip().lower()
    if value not in ("cancel", "leave"):
        log.warning("%s=%r is not 'cancel' or 'leave'; remote tasks are cancelled on shutdown", ENV_ON_SHUTDOWN,
                    value)
    return value == "leave"


def install() -> None:
    """Put the handler in front of the current SIGINT/SIGTERM handlers; once, and only
    from the main thread (the only one Python lets install handlers)."""
    global _installed
    if _installed:
        return
    if threading.current_thread() is not threading.main_thread():
        log.warning("not on the main thread: remote tasks are not cancelled when ComfyUI is stopped")
        return
    for sig in SIGNALS:
        previous = signal.getsignal(sig)
        signal.signal(sig, lambda signum, frame, previous=previous: _on_signal(signum, frame, previous))
    _installed = True


def _on_signal(signum: int, frame, previous) -> None:
    if not shutting_down():
        stop_runs(leave_tasks_running())
    _hand_over(signum, frame, previous)


def stop_runs(leave_running: bool) -> list[str]:
    """Stop every run and wait (at most GRACE s) for their waits to end; the tasks still
    being waited on then."""
    waited = WAITING.tasks()
    if waited:
        log.warning("ComfyUI is stopping: %s %d RunningHub task(s): %s",
                    "leaving running" if leave_running else "cancelling", len(waited), ", ".join(waited))
    shut_down(leave_tasks_running=leave_running)
    left = WAITING.wait_until_none(GRACE)
    if left:
        log.warning("still waiting on RunningHub task(s) %s after %.1f s; check them on the website",
                    ", ".join(left), GRACE)
    return left


def _hand_over(signum: int, frame, previous) -> None:
    """What would have happened without the pack."""
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
