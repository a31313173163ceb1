"""Key pools: one scheduler per (site, key set) for the whole process.

RunningHub limits how many tasks an account runs at once; its advice for more throughput
is several keys used together. `KeyPool` hands each new task to a key with a free slot:

- Slots are counted here: a slot is taken just before `create` and given back when the
  task ends (`Lease.release`), so concurrent submitters never over-book a key.
- Fair: the least-loaded key (in-flight / capacity) wins, ties go to the key picked
  longest ago (round robin); submitters that have to wait are served first come, first
  served.
- Waiting blocks on a Condition (woken by every release) and re-checks the interrupt
  callable every `tick` seconds, so Cancel is honoured within a fraction of a second.
  Waiting for the pool's own tasks to end has no time limit (they end, each within its
  own wait budget); waiting while RunningHub refuses keys that have room has one.
- 421 / 415 / 814 replies created nothing, so the submitter simply tries again, on
  another key if one is free. A 421 while some of our tasks run on that key teaches the
  pool the key's real limit (learned down; after `relearn_after` seconds one more slot is
  tried again). When the account reports more tasks than ours (`currentTaskCounts`:
  someone else uses the key), or nothing of ours runs there, the key cools down instead
  (jittered exponential backoff, capped).
- Per-key errors (key refused: 801/802/806/811; out of coins: 416/812) take the key out
  of the pool with a warning instead of failing every task; the task goes to another key.
  Only when no key is left does submitting fail, naming each (redacted) key and why.
  A removed key is tried again after `readmit_after` seconds (the user may top up).
  A pool of one key never removes it: its error is raised as it is.
- A task keeps its key: the lease holds the client that created it, and the pool
  remembers task ids so a re-attach by id finds the right key.

Pure Python: no ComfyUI, no torch. Keys appear only as `…` + last 4 characters.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

from .api import RunningHubClient
from .credentials import ApiKey
from .errors import (AuthError, CapacityError, InsufficientFundsError, RunningHubError, TaskNotFoundError,
                     WaitInterrupted)
from .sites import Site
from .stop import TICK

log = logging.getLogger("runninghub_bridge.client")
T = TypeVar("T")

ENV_KEY_CONCURRENCY = "RUNNINGHUB_KEY_CONCURRENCY"
#: Tasks one key may run at once unless RUNNINGHUB_KEY_CONCURRENCY says otherwise.
#: RunningHub's consumer accounts run 1-2 tasks at once. Starting at 2 loses nothing on a
#: 2-slot key; on a 1-slot key the second create is refused with 421 (nothing created,
#: nothing billed) and the pool learns 1. Starting at 1 would leave half of every 2-slot
#: key idle for good, since nothing would ever show that a second slot exists.
DEFAULT_KEY_CONCURRENCY = 2
MAX_KEY_CONCURRENCY = 1000

PER_KEY_ERRORS = (AuthError, InsufficientFundsError)


def key_concurrency_from(text: str | None) -> int:
    """RUNNINGHUB_KEY_CONCURRENCY's value → slots per key (the default when unset or invalid)."""
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        if text not in (None, ""):
            log.warning("%s=%r is not a whole number; using %d", ENV_KEY_CONCURRENCY, text,
                        DEFAULT_KEY_CONCURRENCY)
        return DEFAULT_KEY_CONCURRENCY
    return max(1, min(MAX_KEY_CONCURRENCY, value))


@dataclass
class _Slotted:
    """One key of the pool and what the pool knows about it (guarded by the pool's lock)."""

    key: ApiKey
    client: RunningHubClient
    limit: int  # configured slots
    capacity: int  # slots in use now: the limit, or less after a 421
    in_flight: int = 0
    learned_at: float = 0.0
    cooling_until: float = 0.0
    backoff: float = 0.0
    removed: str | None = None  # why the key is out of the pool
    removed_error: RunningHubError | None = None
    removed_at: float = 0.0
    last_pick: int = -1
    created: int = 0

    @property
    def hint(self) -> str:
        return self.key.hint

    def free(self, now: float) -> bool:
        return self.removed is None and self.cooling_until <= now and self.in_flight < self.capacity


@dataclass(frozen=True)
class KeyState:
    """A read-only view of one key, for status lines, logs and tests."""

    hint: str
    in_flight: int
    capacity: int
    limit: int
    state: str  # "ready", "full", "cooling", "removed"
    reason: str | None
    created: int


class Lease:
    """One slot of one key, from just before `create` until the task ends. Release it once
    (a context manager does); releasing again does nothing."""

    def __init__(self, pool: "KeyPool", slot: _Slotted):
        self._pool = pool
        self._slot = slot
        self._released = False

    @property
    def client(self) -> RunningHubClient:
        """The client of the key that holds the slot: use it for the task's outputs, status, cancel."""
        return self._slot.client

    @property
    def key_hint(self) -> str:
        return self._slot.hint

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        self._pool._release(self)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease({self._slot.hint}{', released' if self._released else ''})"


class KeyPool:
    def __init__(self, site: Site, keys: Sequence[ApiKey], *, client_factory: Callable[[ApiKey], RunningHubClient],
                 concurrency: int = DEFAULT_KEY_CONCURRENCY, probe_account: bool = True,
                 cooldown_first: float = 1.0, cooldown_max: float = 15.0, relearn_after: float = 600.0,
                 readmit_after: float = 600.0, tick: float = TICK, tell_every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        if not keys:
            raise ValueError("a key pool needs at least one key")
        concurrency = max(1, int(concurrency))
        self.site = site
        self._slots = [_Slotted(k, client_factory(k), concurrency, concurrency) for k in dict.fromkeys(keys)]
        self.probe_account = probe_account
        self.cooldown_first = cooldown_first
        self.cooldown_max = cooldown_max
        self.relearn_after = relearn_after
        self.readmit_after = readmit_after
        self.tick = tick
        self.tell_every = tell_every  # on_wait at most this often per submitter
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._waiting: deque[object] = deque()
        self._picks = itertools.count()
        self._task_keys: OrderedDict[str, _Slotted] = OrderedDict()

    @classmethod
    def of_client(cls, client: RunningHubClient, **kw) -> "KeyPool":
        """A private pool of one key around an existing client."""
        return cls(client.site, [client.key], client_factory=lambda _key: client, **kw)

    def __repr__(self) -> str:
        return f"KeyPool({self.site.host}, keys {', '.join(s.hint for s in self._slots)})"

    # -- views ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self._slots)

    @property
    def waiting(self) -> int:
        """Submitters waiting for a slot now."""
        with self._cond:
            return len(self._waiting)

    def states(self) -> list[KeyState]:
        now = self._clock()
        with self._cond:
            out = []
            for s in self._slots:
                if s.removed is not None:
                    state = "removed"
                elif s.cooling_until > now:
                    state = "cooling"
                elif s.in_flight >= s.capacity:
                    state = "full"
                else:
                    state = "ready"
                out.append(KeyState(s.hint, s.in_flight, s.capacity, s.limit, state, s.removed, s.created))
            return out

    def warnings(self) -> list[str]:
        """One line per key that is out of the pool now."""
        with self._cond:
            return [_removal_text(s) for s in self._slots if s.removed is not None]

    def describe(self) -> str:
        """`4 keys, 3/8 slots busy` (plus what is out of the pool)."""
        states = self.states()
        usable = [s for s in states if s.state != "removed"]
        text = (f"{len(states)} key{'s' if len(states) != 1 else ''}, "
                f"{sum(s.in_flight for s in usable)}/{sum(s.capacity for s in usable)} slots busy")
        out = len(states) - len(usable)
        return text + (f", {out} out of the pool" if out else "")

    # -- clients for calls that are not task creations ----------------------------------

    def client(self) -> RunningHubClient:
        """A usable key's client for calls that create nothing (upload, workflow JSON):
        always the first usable key, so per-key caches (uploads) keep hitting."""
        with self._cond:
            self._readmit(self._clock())
            for s in self._slots:
                if s.removed is None:
                    return s.client
            raise self._exhausted_error()

    def call_any(self, call: Callable[[RunningHubClient], T], *,
                 on_warning: Callable[[str], None] | None = None) -> T:
        """`call(client)` with the first usable key; a per-key error takes that key out and
        the call is tried with the next one."""
        while True:
            with self._cond:
                self._readmit(self._clock())
                slot = next((s for s in self._slots if s.removed is None), None)
                if slot is None:
                    raise self._exhausted_error()
            try:
                return call(slot.client)
            except PER_KEY_ERRORS as exc:
                if len(self._slots) == 1:
                    raise
                self._remove(slot, exc, on_warning)

    def clients(self) -> list[RunningHubClient]:
        """The client of every key, in the pool's order (removed keys included): for calls
        that must find which key owns something (a native prompt after a restart)."""
        with self._cond:
            return [s.client for s in self._slots]

    def client_for_task(self, task_id: str, key_hint: str | None = None) -> RunningHubClient:
        """The client of the key that created `task_id`: remembered for tasks created
        through this pool, or the key ending as `key_hint` (the task ledger keeps it across
        restarts); otherwise each key is asked (status) until one knows the task.
        If none does, the first key's client (its call then reports the unknown task)."""
        task_id = str(task_id).strip()
        with self._cond:
            slot = self._task_keys.get(task_id)
            hinted = [s for s in self._slots if key_hint and s.hint == key_hint]
            if slot is None and len(hinted) == 1:
                slot = hinted[0]
                self._remember_locked(task_id, slot)
            if slot is not None or len(self._slots) == 1:
                return (slot or self._slots[0]).client
            candidates = list(self._slots)
        for s in candidates:
            try:
                s.client.status(task_id)
            except (TaskNotFoundError, AuthError):
                continue
            self._remember(task_id, s)
            return s.client
        return candidates[0].client

    # -- submitting ------------------------------------------------------------------------

    def submit(self, create: Callable[[RunningHubClient], T], *, should_stop: Callable[[], bool] | None = None,
               budget_seconds: float = 600.0, on_wait: Callable[[str], None] | None = None,
               on_warning: Callable[[str], None] | None = None) -> tuple[Lease, T]:
        """Run `create(client)` on a key with a free slot; returns the lease (held until the
        task ends: release it) and what `create` returned.

        Raises WaitInterrupted when `should_stop()` turns true while waiting (nothing was
        created), CapacityError when RunningHub kept refusing for `budget_seconds` (time
        spent waiting for this pool's own tasks to end does not count: they end), and the
        per-key error when no key is left. Any other error of `create` is raised as it is
        (the slot is given back)."""
        ticket = object()
        refused = _Refusals()
        with self._cond:
            self._waiting.append(ticket)
        try:
            while True:
                lease = self._acquire(ticket, refused, should_stop, budget_seconds, on_wait)
                try:
                    result = create(lease.client)
                except CapacityError as exc:
                    self._on_capacity(lease, exc)
                except PER_KEY_ERRORS as exc:
                    self._release(lease)
                    if len(self._slots) == 1:
                        raise
                    self._remove(lease._slot, exc, on_warning)
                except BaseException:
                    self._release(lease)
                    raise
                else:
                    self._on_created(lease, result)
                    return lease, result
                with self._cond:  # try again first in line: this submitter was served already
                    self._waiting.appendleft(ticket)
                    self._cond.notify_all()
        finally:
            with self._cond:
                try:
                    self._waiting.remove(ticket)
                except ValueError:
                    pass
                self._cond.notify_all()

    def _acquire(self, ticket: object, refused: "_Refusals", should_stop: Callable[[], bool] | None,
                 budget: float, on_wait: Callable[[str], None] | None) -> Lease:
        told, told_at = None, float("-inf")
        while True:
            note = None
            with self._cond:
                now = self._clock()
                refused.tick(now)
                self._readmit(now)
                self._relearn(now)
                if all(s.removed is not None for s in self._slots):
                    raise self._exhausted_error()
                if should_stop is not None and should_stop():  # before taking a slot: never create after a stop
                    raise WaitInterrupted("Interrupted while waiting for a free RunningHub key; nothing was created.",
                                          site=self.site.name)
                if self._waiting and self._waiting[0] is ticket:
                    slot = self._pick(now)
                    if slot is not None:
                        refused.now_refused = False
                        self._waiting.popleft()
                        slot.in_flight += 1
                        slot.last_pick = next(self._picks)
                        self._cond.notify_all()  # the next in line may find a slot too
                        return Lease(self, slot)
                # Waiting counts against the budget only while RunningHub refuses a key that
                # has room for more of ours (it cools down after a 421/415/814).
                refused.now_refused = any(s.removed is None and s.in_flight < s.capacity and s.cooling_until > now
                                          for s in self._slots)
                if refused.seconds > budget:
                    raise self._no_capacity_error(refused.seconds, budget)
                ahead = self._position(ticket)
                summary = self._wait_summary_locked(now, ahead)
                if on_wait is not None and summary != told and now - told_at >= self.tell_every:
                    note, told, told_at = summary, summary, now
                else:
                    timeout = self.tick
                    cooling = [s.cooling_until - now for s in self._slots
                               if s.removed is None and s.cooling_until > now]
                    if cooling:
                        timeout = min(timeout, max(0.01, min(cooling)))
                    if refused.now_refused:
                        timeout = min(timeout, max(0.01, budget - refused.seconds + 0.01))
                    self._cond.wait(timeout)
                    continue
            on_wait(note)  # outside the lock: callbacks may be slow

    def _pick(self, now: float) -> _Slotted | None:
        free = [s for s in self._slots if s.free(now)]
        if not free:
            return None
        return min(free, key=lambda s: (s.in_flight / s.capacity, s.last_pick))

    def _position(self, ticket: object) -> int:
        for i, t in enumerate(self._waiting):
            if t is ticket:
                return i
        return 0

    def _wait_summary_locked(self, now: float, ahead: int) -> str:
        usable = [s for s in self._slots if s.removed is None]
        busy = sum(s.in_flight for s in usable)
        slots = sum(s.capacity for s in usable)
        cooling = sum(1 for s in usable if s.cooling_until > now)
        text = f"waiting for a free key ({busy}/{slots} slots of {len(usable)} key{'s' if len(usable) != 1 else ''} busy"
        if cooling:
            text += f", {cooling} refused by RunningHub for now"
        text += ")"
        if ahead:
            text += f", {ahead} ahead"
        return text

    # -- outcomes ---------------------------------------------------------------------------

    def _release(self, lease: Lease) -> None:
        with self._cond:
            if lease._released:
                return
            lease._released = True
            lease._slot.in_flight = max(0, lease._slot.in_flight - 1)
            self._cond.notify_all()

    def _on_created(self, lease: Lease, result: object) -> None:
        slot = lease._slot
        task_id = getattr(result, "task_id", None)
        with self._cond:
            slot.backoff = 0.0
            slot.created += 1
            if task_id:
                self._remember_locked(str(task_id), slot)

    def _on_capacity(self, lease: Lease, exc: CapacityError) -> None:
        """Nothing was created. Learn the key's limit, or let it cool down; free the slot."""
        slot = lease._slot
        with self._cond:
            ours = slot.in_flight - 1  # our other tasks on this key
        counted = None
        if exc.code == 421 and ours >= 1 and self.probe_account:
            try:
                counted = slot.client.account_status().current_task_counts
            except RunningHubError as status_exc:
                log.info("account status of key %s not available (%s)", slot.hint, status_exc)
        with self._cond:
            now = self._clock()
            lease._released = True
            slot.in_flight = max(0, slot.in_flight - 1)
            ours = slot.in_flight
            if exc.code == 421 and ours >= 1 and (counted is None or counted <= ours):
                if slot.capacity > ours:
                    log.info("RunningHub refused task %d at once on key %s (421): using %d slot%s for it from now on",
                             ours + 1, slot.hint, ours, "" if ours == 1 else "s")
                    slot.capacity = ours
                slot.learned_at = now
            else:
                slot.backoff = self.cooldown_first if slot.backoff <= 0 else min(self.cooldown_max, slot.backoff * 2)
                pause = slot.backoff * (0.5 + 0.5 * random.random())
                slot.cooling_until = now + pause
                other = f"; the account reports {counted} running, {ours} of them ours" if counted is not None else ""
                log.info("no capacity on key %s (%s%s); trying it again in %.1f s, other keys meanwhile",
                         slot.hint, exc.code, other, pause)
            self._cond.notify_all()

    def _remove(self, slot: _Slotted, exc: RunningHubError, on_warning: Callable[[str], None] | None) -> None:
        with self._cond:
            if slot.removed is None:
                slot.removed = _reason(exc)
                slot.removed_error = exc
                slot.removed_at = self._clock()
                text = _removal_text(slot)
                left = sum(1 for s in self._slots if s.removed is None)
                text += f" {left} of {len(self._slots)} keys left." if left else ""
                self._cond.notify_all()
            else:
                text, left = None, sum(1 for s in self._slots if s.removed is None)
        if text is not None:
            log.warning("%s", text)
            if on_warning is not None:
                on_warning(text)
        if not left:
            with self._cond:
                raise self._exhausted_error()

    def _remember(self, task_id: str, slot: _Slotted) -> None:
        with self._cond:
            self._remember_locked(task_id, slot)

    def _remember_locked(self, task_id: str, slot: _Slotted) -> None:
        self._task_keys[task_id] = slot
        self._task_keys.move_to_end(task_id)
        while len(self._task_keys) > 10000:
            self._task_keys.popitem(last=False)

    # -- time-based corrections (lock held) -----------------------------------------------

    def _readmit(self, now: float) -> None:
        for s in self._slots:
            if s.removed is not None and now - s.removed_at >= self.readmit_after:
                log.info("trying key %s again (out of the pool for %.0f s: %s)", s.hint, now - s.removed_at, s.removed)
                s.removed, s.removed_error = None, None

    def _relearn(self, now: float) -> None:
        for s in self._slots:
            if s.capacity < s.limit and now - s.learned_at >= self.relearn_after:
                s.capacity += 1
                s.learned_at = now

    # -- errors ---------------------------------------------------------------------------------

    def _exhausted_error(self) -> RunningHubError:
        errors = [s.removed_error for s in self._slots if s.removed_error is not None]
        reasons = "; ".join(f"{s.hint}: {s.removed}" for s in self._slots)
        kinds = {type(e) for e in errors}
        cls = kinds.pop() if len(kinds) == 1 else RunningHubError
        last = errors[-1] if errors else None
        advice = ""
        if any(isinstance(e, AuthError) for e in errors):
            advice += f" Check the keys in settings (RunningHub → API keys). {self.site.other_site_hint()}"
        if any(isinstance(e, InsufficientFundsError) for e in errors):
            advice += f" Top up the accounts on {self.site.host}."
        message = (f"No usable key is left in the RunningHub key pool on {self.site.host}: {reasons}. "
                   f"Nothing was created.{advice}")
        return cls(message.rstrip(), code=getattr(last, "code", None), site=self.site.name)

    def _no_capacity_error(self, waited: float, budget: float) -> CapacityError:
        return CapacityError(
            f"RunningHub refused new tasks for {waited:.0f} s (queue budget {budget:.0f} s) on the "
            f"{len(self._slots)} key(s) of the pool on {self.site.host}; nothing was created. Queue again later, "
            "or add keys to the profile.", code=421, site=self.site.name)


class _Refusals:
    """How long one submitter has waited while RunningHub refused keys with room."""

    def __init__(self):
        self.seconds = 0.0
        self.now_refused = False
        self._last: float | None = None

    def tick(self, now: float) -> None:
        if self._last is not None and self.now_refused:
            self.seconds += now - self._last
        self._last = now


def _reason(exc: RunningHubError) -> str:
    if isinstance(exc, InsufficientFundsError):
        return f"out of coins ({exc.code})"
    if isinstance(exc, AuthError):
        return f"key refused ({exc.code})"
    return f"error {exc.code}"


def _removal_text(slot: _Slotted) -> str:
    return f"RunningHub key {slot.hint} taken out of the pool: {slot.removed}."


# -- the process-wide registry -------------------------------------------------------------

_pools: dict[tuple, KeyPool] = {}
_pools_lock = threading.Lock()


def shared_pool(site: Site, keys: Sequence[ApiKey], *, client_factory: Callable[[ApiKey], RunningHubClient],
                concurrency: int = DEFAULT_KEY_CONCURRENCY, **kw) -> KeyPool:
    """The one pool of this process for `site` and this set of keys (order does not matter)."""
    ident = (site.base_url, int(concurrency),
             tuple(sorted(hashlib.sha256(k.secret.encode()).hexdigest() for k in keys)))
    with _pools_lock:
        pool = _pools.get(ident)
        if pool is None:
            pool = _pools[ident] = KeyPool(site, keys, client_factory=client_factory, concurrency=concurrency, **kw)
            log.info("key pool for %s: %d key(s) x %d slot(s)", site.host, pool.size, int(concurrency))
        return pool
