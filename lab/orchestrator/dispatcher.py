"""The queue dispatcher: serves queued runs to the benches this process drives.

One thread dispatches (leases, claims and every store write of the dispatcher), so a store
such as SQLite sees one writer per dispatcher and batches instead of a storm of small
transactions; runs and health checks execute in a bounded pool, at most one per bench, so a
slow run on one bench holds up no other. Several dispatchers (processes, hosts) may share a
store: leases keep them off each other's benches and claims are atomic, so each queued run is
taken once.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lab.errors import LabFault
from lab.store import (
    QueuedRun,
    Store,
    StoreError,
    acquire_leases,
    benches,
    claim_runs,
    expire_leases,
    finish_queued_runs,
    held_leases,
    match_runs,
    note_bench_fault,
    quarantine_bench,
    register_bench,
    release_leases,
    renew_leases,
    requeue_claimed,
)
from lab.store.models import utcnow


@dataclass(frozen=True)
class BenchSlot:
    """A bench the dispatcher may give work to: its DUT model and what it offers (power, scope, ...)."""

    name: str
    model: str
    capabilities: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))  # accept any iterable


Execute = Callable[[QueuedRun, BenchSlot], str | None]
HealthCheck = Callable[[BenchSlot], str | None]


@dataclass
class DispatchStats:
    """What one `Dispatcher.run` did; `latencies` are dispatch latencies in seconds (see Dispatcher)."""

    dispatched: int = 0
    done: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0  # of wall_seconds: registering benches, requeueing, expiring leases
    quarantined: list[str] = field(default_factory=list)
    unfinished: int = 0  # still executing when run() returned: entries stay claimed, leases expire

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the latencies (q in 0..100); None without any."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass(eq=False)
class _Slot:
    spec: BenchSlot
    free_at: float  # dispatcher clock: since when the bench could take work
    key: tuple[str, frozenset[str]] = field(init=False)  # what it can do: model, capabilities
    leased: bool = False
    checked: bool = False  # passed a health check since it last took work or lost its lease
    busy: bool = False  # a run or a health check of it is in the pool
    quarantined: bool = False
    check_secs: float = 0.0  # health checking since free_at (not the dispatcher's latency)
    retry_at: float = 0.0  # after a refused lease: when to ask again

    def __post_init__(self) -> None:
        self.key = (self.spec.model, self.spec.capabilities)

    @property
    def row(self) -> tuple[str, str, frozenset[str]]:
        return self.spec.name, self.spec.model, self.spec.capabilities


@dataclass(frozen=True)
class _RunDone:
    slot: _Slot
    queued: QueuedRun
    run_id: str | None
    error: Exception | None
    at: float


@dataclass(frozen=True)
class _CheckDone:
    slot: _Slot
    cause: str | None
    seconds: float


class Dispatcher:
    """Serves the store's queue to `slots`: lease, health-check, claim, execute, finish.

    `execute(queued, slot)` does the work and returns the run id it created (or None); raising
    marks the entry failed with the error, and a `LabFault` also counts against the bench, which
    is quarantined at `fault_limit` faults. `health_check(slot)` returns None when the bench is
    fine, else the cause; it runs before every claim for that bench (and only when work waits for
    it), so a failing bench is quarantined without having taken a run and the work goes to
    another matching bench. `holder` must be unique among live dispatchers and stable across
    restarts: a restarted dispatcher puts its predecessor's unfinished claims back in the queue.

    `poll_interval` is how often an idle dispatcher looks for new work; `drain_seconds` how long
    `run()` waits at the end for runs still executing (default: `lease_ttl`).

    Dispatch latency, as measured: for each run, the time from the later of (a) the moment its
    bench was free to take it (its previous run returned, or `run()` had registered it) and
    (b) the moment the run was enqueued, to the moment its claim committed, minus the bench's
    health check in between. That is the wait the dispatcher itself adds (leasing, store round
    trips, waiting for its turn in the one dispatching thread), not the checks' or the work's.
    When every bench is always free (instant work), it is a queueing time: hundreds of benches
    share one thread, so it grows with their number divided by the runs per second claimed.
    """

    def __init__(self, store: Store, *, holder: str, slots: Iterable[BenchSlot], execute: Execute,
                 lease_ttl: float = 30.0, health_check: HealthCheck | None = None, fault_limit: int = 3,
                 clock: Callable[[], float] = time.monotonic, poll_interval: float = 0.5,
                 drain_seconds: float | None = None) -> None:
        specs = list(slots)
        names = [s.name for s in specs]
        if not specs or len(set(names)) != len(names):
            raise ValueError("slots must name at least one bench, each once")
        if lease_ttl <= 0 or fault_limit < 1 or poll_interval <= 0:
            raise ValueError("lease_ttl and poll_interval must be positive, fault_limit at least 1")
        self.store, self.holder = store, holder
        self._execute, self._health_check = execute, health_check
        self._ttl, self._fault_limit, self._clock = lease_ttl, fault_limit, clock
        self._beat = lease_ttl / 3  # three heartbeats per lease: one late beat loses nothing
        self._poll = min(poll_interval, self._beat)
        self._drain_s = lease_ttl if drain_seconds is None else drain_seconds
        self._slots = [_Slot(spec, free_at=clock()) for spec in specs]
        self._by_name = {s.spec.name: s for s in self._slots}
        keys = {s.key for s in self._slots}
        # a bench that found no work means none for any bench of its model with fewer capabilities
        self._covers = {k: [o for o in keys if o[0] == k[0] and o[1] <= k[1]] for k in keys}
        self._empty_until: dict[tuple[str, frozenset[str]], float] = {}
        self._done: queue.SimpleQueue[_RunDone | _CheckDone] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()

    # --- public ---------------------------------------------------------------------------

    def run(self, *, max_seconds: float, max_runs: int | None = None, idle_exit: bool = True) -> DispatchStats:
        """Dispatch for at most `max_seconds` and `max_runs` runs, or until `stop()`, or (with
        `idle_exit`) until nothing is running and the queue holds nothing any usable bench can do.

        Then waits up to `drain_seconds` (default: the lease TTL) for runs still executing, and
        gives back the leases of idle benches. A run still executing after that keeps its lease
        until it expires and its entry stays claimed, for `requeue_claimed` on restart.
        """
        start = self._clock()
        deadline = start + max(0.0, max_seconds)
        stats = DispatchStats()
        self._stop.clear()
        self._empty_until.clear()
        pool = ThreadPoolExecutor(max_workers=len(self._slots), thread_name_prefix=f"dispatch-{self.holder}")
        try:
            self._step(pool, stats, limit=0)  # what a previous run() left executing and has ended since
            if any(s.busy for s in self._slots):
                raise RuntimeError("the previous run() of this dispatcher still has work executing")
            self._begin()
            stats.startup_seconds = self._clock() - start
            next_beat = start + self._beat
            while not self._stop.is_set() and (max_runs is None or stats.dispatched < max_runs):
                now = self._clock()
                if now >= deadline:
                    break
                if now >= next_beat:
                    self._heartbeat(now)
                    next_beat = now + self._beat
                limit = None if max_runs is None else max_runs - stats.dispatched
                if self._step(pool, stats, limit):
                    continue
                if idle_exit and not any(s.busy for s in self._slots) and self._idle(self._clock()):
                    break
                self._wait(min(deadline, next_beat) - self._clock())
            self._drain(pool, stats, next_beat)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            stats.unfinished = sum(s.busy for s in self._slots)
            self._release_idle()
            stats.wall_seconds = self._clock() - start
        return stats

    def stop(self) -> None:
        """Ask `run()` to stop dispatching and drain (thread-safe; returns at once)."""
        self._stop.set()
        self._wake.set()

    # --- the loop's parts -----------------------------------------------------------------

    def _begin(self) -> None:
        """Register the benches, take back this holder's unfinished claims, clear dead leases."""
        known = {b.name: b for b in benches(self.store)}
        with self.store.transaction() as tx:
            for s in self._slots:
                b = known.get(s.spec.name)
                if b is None or b.model != s.spec.model or set(b.capabilities or ()) != s.spec.capabilities:
                    register_bench(tx, name=s.spec.name, model=s.spec.model, capabilities=s.spec.capabilities)
        requeue_claimed(self.store, holder=self.holder)
        release_leases(self.store, holder=self.holder)  # a predecessor's: nothing of ours runs yet
        expire_leases(self.store)
        now = self._clock()  # the benches are ours to serve from here
        for s in self._slots:
            s.free_at, s.leased, s.checked, s.check_secs, s.retry_at = now, False, False, 0.0, 0.0
            s.quarantined = known.get(s.spec.name) is not None and known[s.spec.name].state == "quarantined"

    def _step(self, pool: ThreadPoolExecutor, stats: DispatchStats, limit: int | None) -> bool:
        """One round: record what finished, claim for ready benches, lease and check others.
        Returns whether anything moved (the loop then goes round again without waiting)."""
        self._wake.clear()
        finished, faults, sick, moved = self._collect(stats)
        now = self._clock()
        ready = sorted((s for s in self._slots if self._free(s, now) and s.leased
                        and (s.checked or self._health_check is None)), key=lambda s: s.free_at)
        if limit is not None:
            ready = ready[:max(0, limit)]
        claimed: list[QueuedRun] = []
        to_release = [s for s in self._slots if s.quarantined and s.leased and not s.busy]
        if finished or faults or sick or ready or to_release:
            with self.store.transaction() as tx:
                finish_queued_runs(tx, finished=finished)
                for slot, message in faults:
                    count = note_bench_fault(tx, bench=slot.spec.name, message=message)
                    if count >= self._fault_limit and not slot.quarantined:
                        sick.append((slot, f"{count} lab faults, last: {message}"))
                for slot, reason in sick:
                    quarantine_bench(tx, bench=slot.spec.name, reason=reason)
                    slot.quarantined = True
                    stats.quarantined.append(slot.spec.name)
                    to_release.append(slot)
                ready = [s for s in ready if not s.quarantined]
                if ready:
                    claimed = claim_runs(tx, benches=[s.row for s in ready], holder=self.holder, now=utcnow())
                    taken = {q.bench for q in claimed}
                    for s in ready:
                        if s.spec.name not in taken:  # nothing left that it can do: let others have it
                            self._mark_empty(s, now)
                            to_release.append(s)
                if to_release:
                    release_leases(tx, holder=self.holder, benches=[s.spec.name for s in to_release])
            for s in to_release:
                s.leased = s.checked = False
        if claimed:
            t_mono, t_wall = self._clock(), utcnow()
            for q in claimed:
                slot = self._by_name[q.bench]
                age = (t_wall - q.created_at).total_seconds()
                stats.latencies.append(max(0.0, min(t_mono - slot.free_at, age) - slot.check_secs))
                slot.busy, slot.checked, slot.check_secs = True, False, 0.0
                pool.submit(self._run_one, slot, q)
            stats.dispatched += len(claimed)
        if limit is not None and limit <= len(claimed):
            return True
        return self._prepare(pool, self._clock()) or bool(claimed) or moved

    def _prepare(self, pool: ThreadPoolExecutor, now: float) -> bool:
        """Lease (and health-check) free benches that work waits for; True if any changed."""
        waiting = [s for s in self._slots if self._free(s, now) and s.retry_at <= now
                   and not (s.leased and (s.checked or self._health_check is None))]
        if not waiting:
            return False
        if self._health_check is not None:  # check only benches that would get work
            wanted = match_runs(self.store, benches=[s.row for s in waiting])
            for s in waiting:
                if s.spec.name not in wanted:
                    self._mark_empty(s, now, wanted=wanted)
            waiting = [s for s in waiting if s.spec.name in wanted]
        to_lease = [s for s in waiting if not s.leased]
        got = set(acquire_leases(self.store, benches=[s.spec.name for s in to_lease], holder=self.holder,
                                 ttl=self._ttl)) if to_lease else set()
        for s in to_lease:
            if s.spec.name in got:
                s.leased = True
            else:  # held by another dispatcher, or quarantined meanwhile: ask again later
                s.retry_at = now + self._beat
        checks = [s for s in waiting if s.leased and not s.checked and self._health_check is not None]
        for s in checks:
            s.busy = True
            pool.submit(self._check_one, s)
        return bool(got) or bool(checks)

    def _collect(self, stats: DispatchStats) -> tuple[list[tuple[int, str, str | None, str | None]],
                                                      list[tuple[_Slot, str]], list[tuple[_Slot, str]], bool]:
        finished: list[tuple[int, str, str | None, str | None]] = []
        faults: list[tuple[_Slot, str]] = []
        sick: list[tuple[_Slot, str]] = []
        moved = False
        while True:
            try:
                msg = self._done.get_nowait()
            except queue.Empty:
                return finished, faults, sick, moved
            moved = True
            slot = msg.slot
            slot.busy = False
            if isinstance(msg, _RunDone):
                slot.free_at = msg.at
                if msg.error is None:
                    finished.append((msg.queued.id, "done", msg.run_id, None))
                    stats.done += 1
                else:
                    message = _one_line(msg.error)
                    finished.append((msg.queued.id, "failed", msg.run_id, message))
                    stats.failed += 1
                    if isinstance(msg.error, LabFault):
                        faults.append((slot, message))
                if not slot.leased:  # lost while running (see _heartbeat): nothing to hand back
                    slot.checked = False
            elif msg.cause is None:
                slot.checked, slot.check_secs = slot.leased, slot.check_secs + msg.seconds
            else:
                sick.append((slot, f"health check failed: {msg.cause}"))

    def _run_one(self, slot: _Slot, queued: QueuedRun) -> None:
        """In the pool: the work itself. Never raises; the outcome goes back to the dispatcher."""
        run_id: str | None = None
        error: Exception | None = None
        try:
            run_id = self._execute(queued, slot.spec)
        except Exception as exc:  # noqa: BLE001 - the entry is marked failed with it
            error = exc
        self._done.put(_RunDone(slot, queued, run_id, error, self._clock()))
        self._wake.set()

    def _check_one(self, slot: _Slot) -> None:
        t0 = self._clock()
        try:
            cause = self._health_check(slot.spec) if self._health_check else None
        except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check
            cause = _one_line(exc)
        self._done.put(_CheckDone(slot, cause, self._clock() - t0))
        self._wake.set()

    def _heartbeat(self, now: float) -> None:
        """Renew all leases in one UPDATE, free dead ones, and follow quarantines made elsewhere."""
        mine = sum(s.leased for s in self._slots)
        if renew_leases(self.store, holder=self.holder, ttl=self._ttl) != mine:
            held = set(held_leases(self.store, holder=self.holder))
            stray = held - self._by_name.keys()
            if stray:
                release_leases(self.store, holder=self.holder, benches=stray)
            for s in self._slots:
                if s.leased and s.spec.name not in held:
                    s.leased = s.checked = False  # lost: a run on it may go on; re-leased after
        expire_leases(self.store)
        states = {b.name: b.state for b in benches(self.store)}
        for s in self._slots:  # an operator's quarantine or release (its lease goes back in _step)
            quarantined = states.get(s.spec.name) == "quarantined"
            if s.quarantined and not quarantined:
                s.free_at = now
            s.quarantined = quarantined

    def _drain(self, pool: ThreadPoolExecutor, stats: DispatchStats, next_beat: float) -> None:
        """Wait (bounded) for runs and checks in flight, recording their outcomes."""
        until = self._clock() + max(0.0, self._drain_s)
        while True:
            self._step(pool, stats, limit=0)
            now = self._clock()
            if not any(s.busy for s in self._slots) or now >= until:
                return
            if now >= next_beat:
                self._heartbeat(now)
                next_beat = now + self._beat
            self._wait(min(until, next_beat) - now)

    def _release_idle(self) -> None:
        idle = [s for s in self._slots if s.leased and not s.busy]
        if not idle:
            return
        try:
            release_leases(self.store, holder=self.holder, benches=[s.spec.name for s in idle])
        except StoreError:
            pass  # the store is gone: the leases expire on their own
        for s in idle:
            s.leased = s.checked = False

    # --- small helpers --------------------------------------------------------------------

    def _free(self, s: _Slot, now: float) -> bool:
        return not (s.busy or s.quarantined) and self._empty_until.get(s.key, 0.0) <= now

    def _mark_empty(self, s: _Slot, now: float, *, wanted: Mapping[str, int] | None = None) -> None:
        """No work for this bench now: skip it (and poorer benches of its model) for a poll.

        Not a kind of bench that another of the same kind was just matched with: with more benches
        of a model than runs, the one that gets the run must stay free to claim it (an instant
        health check, such as a lab host's heartbeat, claims within the same poll)."""
        busy_keys = {self._by_name[name].key for name in (wanted or {}) if name in self._by_name}
        for key in self._covers[s.key]:
            if key not in busy_keys:
                self._empty_until[key] = now + self._poll

    def _idle(self, now: float) -> bool:
        """True when no usable bench has work waiting (those not known to be empty are asked)."""
        unknown = [s for s in self._slots if self._free(s, now)]
        if unknown:
            wanted = match_runs(self.store, benches=[s.row for s in unknown])
            for s in unknown:
                if s.spec.name not in wanted:
                    self._mark_empty(s, now, wanted=wanted)
            return not wanted
        return True

    def _wait(self, seconds: float) -> None:
        self._wake.wait(max(0.0, min(seconds, self._poll)))


def _one_line(exc: BaseException) -> str:
    """An error as one short line for the queue and the event log (never a traceback)."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    if not isinstance(exc, LabFault):  # a LabFault's text already says what and where
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:300]


__all__ = ["BenchSlot", "DispatchStats", "Dispatcher", "Execute", "HealthCheck"]
