"""Ctrl+C and SIGTERM: stop every run, cancel the remote tasks being waited on (or leave
them running), then let ComfyUI exit as it would have, within 2 s (up to 6 s while a
create's reply is on its way: only it names the task to cancel).

Without this, SIGINT ended ComfyUI's server but the interpreter then joined the pack's
worker threads, which waited until the remote task ended (up to max_wait_minutes), and a
SIGTERM killed the process with its tasks still running and billed. The handler stops
every run (client/stop.py) and returns at once; a helper thread waits up to `GRACE` s for
the runs in client/inflight.py to end (each cancels its own task exactly once) and sends
the signal again, which the handler then gives to what was installed before (ComfyUI's
KeyboardInterrupt for SIGINT, the default exit for SIGTERM). Nothing blocks the main
thread, so no lock it holds can keep a run from ending.

`RUNNINGHUB_ON_SHUTDOWN=leave` leaves the remote tasks running instead (re-attach later
with RH Fetch Outputs and the task id in the log).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from ..client.stop import shut_down, shutting_down
from ..client.inflight import IN_FLIGHT

log = logging.getLogger("runninghub_bridge.host")

ENV_ON_SHUTDOWN = "RUNNINGHUB_ON_SHUTDOWN"  # cancel (default) | leave
GRACE = 1.5  # seconds for the cancels; ComfyUI still exits within 2 s
CREATE_GRACE = 6.0  # ... unless a create's reply is on its way: its task is then cancelled (or recorded)
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
    """First delivery: stop every run and return at once (the main thread keeps serving
    ComfyUI while the runs cancel their tasks); a helper thread sends the signal again when
    they are done. Second delivery (that one, or the user's second Ctrl+C): hand it over."""
    if shutting_down():
        _hand_over(signum, frame, previous)
        return
    leave = leave_tasks_running()
    waited = IN_FLIGHT.tasks()
    if waited:
        log.warning("ComfyUI is stopping: %s the RunningHub tasks of %s",
                    "leaving running" if leave else "cancelling", ", ".join(waited))
    shut_down(leave_tasks_running=leave)
    threading.Thread(target=_resend_when_runs_ended, args=(signum,), name="rh-shutdown", daemon=True).start()


def _resend_when_runs_ended(signum: int) -> None:
    """The runs get GRACE s to cancel their tasks; a create whose reply is still on its way
    gets up to CREATE_GRACE s in all, since only its reply names the task it made: cancelled
    then (or recorded in the ledger when tasks are left running), not left billing unknown."""
    left = IN_FLIGHT.wait_until_none(GRACE)
    creating = IN_FLIGHT.creating()
    if left and creating:
        log.warning("waiting up to %.0f s more for the reply of %s, so the task it made is not left unknown",
                    CREATE_GRACE - GRACE, ", ".join(creating))
        left = IN_FLIGHT.wait_until_none(CREATE_GRACE - GRACE)
    if left:
        log.warning("still waiting on %s; check the task list on the website", ", ".join(left))
    os.kill(os.getpid(), signum)


def _hand_over(signum: int, frame, previous) -> None:
    """What would have happened without the pack."""
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
