"""Status and stop of the runs of one RH Run Workflow (or RH Remote Group) node in one prompt (a sweep).

ComfyUI calls a list-mapped async node once per list element, all at once. The calls of one
node in one prompt share a `Sweep`: one status line per run on the node, and one stop for
all of them (an interrupt, or a failed sibling: the node fails anyway, so the siblings'
remote tasks are cancelled instead of billed). ComfyUI clears its interrupt flag when the
first run raises it, so each prompt keeps its own interrupt event.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

from ..client.errors import RunningHubError, WaitInterrupted
from ..client.stop import TICK, run_with_stop, shutting_down
from ..host import comfy
from ..remote.status import RunStatus

log = logging.getLogger("runninghub_bridge.nodes")
T = TypeVar("T")
_KEEP = 64  # sweeps and prompts remembered (the newest ones)
#: The threads remote runs wait in (RH Run Workflow, RH Remote Group): the default executor
#: has too few threads for a sweep.
RUNNERS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rh-run")
#: Seconds a stopped run's thread is waited for (a cancel, a create's reply) before the node ends anyway.
STOP_GRACE = 2.0
BAR_PER_RUN = 100  # the node's progress bar: this much per run, filled by each run's fraction


class Sweep:
    """The calls of one Run node in one prompt: a status each, pool warnings, and the
    first failure (which stops the others)."""

    def __init__(self, node_id: str | None, prompt_id: str | None = None):
        self.node_id = node_id
        self.prompt_id = prompt_id
        self._loop = asyncio.get_running_loop()  # the prompt's: progress is set there
        self._lock = threading.Lock()
        self._runs: dict[int, RunStatus] = {}
        self._fractions: dict[int, float] = {}  # each run's share of the bar, never moving back
        self._warnings: list[str] = []
        self._bar: int | None = None
        self.failed: str | None = None

    def show(self, index: int, status: RunStatus) -> None:
        """Run `index` is now at `status`: the node's text, status event and progress bar."""
        with self._lock:
            if status.state != "WARNING":
                self._runs[index] = status
                # The remote reports steps per node: between two nodes it knows none, which
                # must not send the bar back to the start.
                self._fractions[index] = max(self._fractions.get(index, 0.0), status.fraction())
            text = self._text_locked()
            runs, warnings = len(self._runs), tuple(self._warnings)
            bar = round(BAR_PER_RUN * sum(self._fractions.values()))
            bar_changed, self._bar = bar != self._bar, bar
            if bar_changed or status.finished:  # posted in the order computed
                self._post(comfy.set_progress, self.node_id, bar, BAR_PER_RUN * max(runs, 1), self.prompt_id)
        comfy.send_status(self.node_id, status, text=text, index=index, runs=runs, warnings=warnings,
                          prompt_id=self.prompt_id)

    def _post(self, call, *args) -> None:
        """Run `call` on the prompt's event loop (ComfyUI updates its progress registry
        there); dropped once the prompt is over and its loop closed."""
        try:
            self._loop.call_soon_threadsafe(call, *args)
        except RuntimeError:
            pass

    def warn(self, index: int, text: str) -> None:
        with self._lock:
            if text not in self._warnings:
                self._warnings.append(text)
            line = self._runs[index].line if index in self._runs else "submitting"
        self.show(index, RunStatus("WARNING", line, warning=text))

    def fail(self, index: int, exc: BaseException) -> None:
        with self._lock:
            if self.failed is None:
                self.failed = f"run #{index + 1}: {exc}"

    def _text_locked(self) -> str:
        lines = [f"⚠ {w}" for w in self._warnings]
        if len(self._runs) == 1 and not self._warnings:
            return next(iter(self._runs.values())).line
        lines += [f"#{i + 1} {self._runs[i].line}" for i in sorted(self._runs)]
        return "\n".join(lines)


_sweeps: "OrderedDict[tuple, Sweep]" = OrderedDict()
_interrupted: "OrderedDict[str, threading.Event]" = OrderedDict()
_registry_lock = threading.Lock()


def remembered(table: OrderedDict, key, make):
    with _registry_lock:
        value = table.get(key)
        if value is None:
            value = table[key] = make()
            while len(table) > _KEEP:
                table.popitem(last=False)
        return value


class NodeStop:
    """The stop of one node call: an interrupt of its prompt, a failed sibling of its sweep,
    shutdown, or ComfyUI abandoning the call (another node failed, so the prompt ends and
    cancels what is still pending). ComfyUI clears its interrupt flag when the first run raises
    it, so the prompt keeps its own (`interrupted`). `show(status)` puts a status under the
    node (default: run `index` of `sweep`)."""

    def __init__(self, prompt_id: str | None, sweep: Sweep | None = None, index: int = 0,
                 show: Callable[[RunStatus], None] | None = None):
        self.interrupted = threading.Event() if prompt_id is None else remembered(_interrupted, prompt_id,
                                                                                  threading.Event)
        self.abandoned = threading.Event()
        self._sweep, self._index = sweep, index
        self._show = show if show is not None or sweep is None else functools.partial(sweep.show, index)

    def should_stop(self) -> bool:
        if self.interrupted.is_set() or self.abandoned.is_set() or shutting_down():
            return True
        if comfy.interrupt_requested():
            self.interrupted.set()
            return True
        return self._sweep is not None and self._sweep.failed is not None

    async def run(self, what: str, call: Callable[..., T], /, *args, **kwargs) -> T:
        """`call(*args, **kwargs)` in a RUNNERS thread under this stop, awaited by the node
        (`what` names it in the log). RUNNERS, not asyncio's default executor: ComfyUI runs
        each prompt under asyncio.run, which joins the default executor's threads when the
        prompt ends, so a wait there on RunningHub would hold ComfyUI's queue until the remote
        task ended. Once stopped, the thread is given STOP_GRACE to finish (a cancel, or a
        create's reply that names the task to cancel); past it, or when ComfyUI abandons the
        node, the node ends and the thread finishes in the background, its end shown under
        the node."""
        job = functools.partial(run_with_stop, self.should_stop, call, *args, **kwargs)
        work = RUNNERS.submit(contextvars.copy_context().run, job)
        waited = asyncio.wrap_future(work)
        try:
            return await self._until_done_or_stopped(waited, what)
        except asyncio.CancelledError:
            self.abandoned.set()
            log.info("%s was abandoned by ComfyUI (another node failed); stopping it", what)
            self._left(work, waited)
            raise
        except WaitInterrupted:
            if not waited.done():
                self._left(work, waited)
            raise

    async def _until_done_or_stopped(self, waited: asyncio.Future, what: str):
        stopped_at = None
        while True:
            done, _ = await asyncio.wait({waited}, timeout=TICK)
            if done:
                return waited.result()
            if stopped_at is None:
                stopped_at = time.monotonic() if self.should_stop() else None
            elif time.monotonic() - stopped_at > STOP_GRACE:
                log.info("%s: stopped %.0f s ago and still finishing; not holding ComfyUI's queue for it", what,
                         STOP_GRACE)
                raise WaitInterrupted(f"Stopped. {what} is still finishing what was on its way (a create's reply "
                                      "or a cancel); how it ends shows here and in the task panel.")

    def _left(self, work: Future, waited: asyncio.Future) -> None:
        """The node no longer waits for `work`: its end, when it comes, is shown under the
        node (a later prompt's front end never gets it: comfy.send_status)."""
        waited.cancel()  # its result is nobody's now (and the prompt's loop may be closed by then)
        show = self._show
        if show is not None:
            work.add_done_callback(lambda done: _show_late_end(done, show))

    async def run_in_sweep(self, what: str, call: Callable[..., T], /, *args, **kwargs) -> T:
        """`run` for run `index` of the sweep: a stop shows CANCEL under the node and ends as
        ComfyUI's interrupt (as a failure naming the sibling that failed, when that was the
        stop); an error shows FAILED and stops the sweep's other runs."""
        sweep, index = self._sweep, self._index
        try:
            return await self.run(what, call, *args, **kwargs)
        except WaitInterrupted as exc:
            if not self.interrupted.is_set() and sweep.failed is not None:  # a sibling list item failed
                message = f"{exc} Stopped because {sweep.failed}"
                sweep.show(index, RunStatus("CANCEL", message, task_id=exc.task_id))
                raise RunningHubError(message, task_id=exc.task_id, site=exc.site) from exc
            log.info("%s", exc)
            sweep.show(index, RunStatus("CANCEL", str(exc), task_id=exc.task_id))
            comfy.raise_interrupt()
            raise
        except comfy.interrupt_exception():
            raise  # ComfyUI's own stop is no failure (an Exception in 0.3.75, a BaseException later)
        except Exception as exc:
            sweep.fail(index, exc)
            sweep.show(index, RunStatus("FAILED", f"failed: {exc}"[:400], task_id=getattr(exc, "task_id", None)))
            raise


def _show_late_end(done: Future, show: Callable[[RunStatus], None]) -> None:
    """How a run the node stopped waiting for ended: cancelled (or not), or failed."""
    exc = None if done.cancelled() else done.exception()
    if isinstance(exc, WaitInterrupted):
        show(RunStatus("CANCEL", str(exc), task_id=exc.task_id))
    elif isinstance(exc, Exception) and not isinstance(exc, comfy.interrupt_exception()):
        show(RunStatus("FAILED", f"failed: {exc}"[:400], task_id=getattr(exc, "task_id", None)))


def sweep_for(prompt_id: str | None, node_id: str | None) -> Sweep:
    """The sweep of `node_id` in `prompt_id` (a fresh one outside a prompt). Called on the
    prompt's event loop."""
    if prompt_id is None:
        return Sweep(node_id)
    return remembered(_sweeps, (prompt_id, node_id), lambda: Sweep(node_id, prompt_id))
