"""One run: every slot bench tests its own sample in parallel; lab trouble never becomes a verdict.

The orchestrator leases the run's benches, hands one work item per bench to an executor, and
watches the store. When a bench fails its health check it is quarantined and a spare bench
(a bench of the inventory outside the run, with a sample of the same model and the same
capabilities) takes over its work; tests a lab fault left undecided are tried once more on a
spare. Benches in the run never take over each other's work: each is testing its own sample.
Without a spare, the tests stay INCONCLUSIVE with the cause. Whatever happens, the run ends
with one final result per planned test, in the store and in `verdicts.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from lab.catalog import EDITION_LABELS
from lab.errors import CertlabError
from lab.inventory import Inventory
from lab.orchestrator.executor import Executor, Outcome
from lab.orchestrator.leases import LeaseKeeper, holder_id
from lab.orchestrator.progress import Progress
from lab.orchestrator.rundir import RunSpec, write_json
from lab.orchestrator.workitem import WorkItem
from lab.reports.junit import bench_models, write_junit
from lab.store import (
    Store,
    append_event,
    clear_bench_faults,
    benches as stored_benches,
    create_run,
    events,
    export_verdicts,
    finalise_unfinished,
    get_run,
    last_event_id,
    note_bench_fault,
    quarantine_bench,
    register_bench,
    reopen_results,
    reopen_unevidenced,
    result_counts,
    results,
    retry_candidates,
    set_run_status,
)

FAULT_LIMIT = 3  # lab faults counted against a bench (across runs) before it is quarantined
STOP_GRACE = 20.0  # seconds a cancelled worker gets to end its test before it is killed
POLL = 0.1  # seconds between looks at the workers
# seconds between looks at the store for the progress display: each look (counts and events, ORM)
# cost the orchestrator a fifth of a core at 0.1 s on a busy lab PC, CPU its benches' DUTs wanted
PROGRESS_EVERY = 1.0


@dataclass
class RunOutcome:
    run_dir: Path
    doc: dict
    counts: Counter
    cancelled: bool
    quarantined: dict[str, str]  # benches of this lab out of the pool when the run ended, and why


class Orchestrator:
    def __init__(self, spec: RunSpec, run_dir: Path, inventory: Inventory, store: Store, *,
                 executor: Executor, console: Console, resume: bool = False, lease_ttl: float = 30.0,
                 lease_holder: str | None = None, spares: bool = True) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.inventory = inventory
        self.store = store
        self.executor = executor
        self.console = console
        self.resume = resume
        # a queue worker runs us on benches it has leased already: we hold them under its name
        self.keeper = LeaseKeeper(store, holder=lease_holder or holder_id(spec.run_id), ttl=lease_ttl)
        self._owns_leases = lease_holder is None  # else the queue worker gives them back, not us
        self._spares = spares  # a queue worker's other benches are its own to give work to
        self.active: set[str] = set()  # benches executing an item now
        self.waiting: list[tuple[WorkItem, str]] = []  # (item for a spare, why) until a spare is free
        self.used: set[str] = set()  # benches this run powered: switched off on cancel
        self._marks: dict[str, int] = {}  # item key -> last event id when it was submitted
        self._finalise_after: dict[str, str] = {}  # plan-only item key -> the reason its tests get
        self._cancel = threading.Event()
        self.progress: Progress | None = None

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        quarantined = self._start()
        previous = {}
        if threading.current_thread() is threading.main_thread():  # a queue worker runs us in threads
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        cancelled = False
        try:
            with Progress(self.store, self.spec.run_id, list(self.spec.benches), self.console,
                          title=f"run {self.spec.run_id}") as progress:
                self.progress = progress
                for slot in self.spec.benches:
                    if slot in quarantined:
                        progress.note(slot, f"quarantined: {quarantined[slot]}")
                        self._take_over(self._item(slot, slot), f"is quarantined ({quarantined[slot]})")
                    else:
                        self._submit(self._item(slot, slot, resume=self.resume))
                cancelled = self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._finish(cancelled)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._cancel.is_set():  # a second Ctrl-C: stop waiting for workers
            raise KeyboardInterrupt
        self._cancel.set()

    def _start(self) -> dict[str, str]:
        """Record the run and lease its benches; returns the slots that are quarantined."""
        inv_hash = hashlib.sha256(Path(self.spec.inventory).read_bytes()).hexdigest()
        existing = get_run(self.store, run_id=self.spec.run_id)
        if self.resume:
            if existing is None:
                raise CertlabError(f"--resume: run {self.spec.run_id} is not in the result store {self.store.url} "
                                   f"(it was recorded in {self.spec.store or 'another store'}); fix: set "
                                   f"CERTLAB_DATABASE_URL or CERTLAB_DATA_DIR as when the run started")
            if existing.status == "finished":
                raise CertlabError(f"--resume: run {self.spec.run_id} finished already; its verdicts are in "
                                   f"{self.run_dir / 'verdicts.json'}")
        create_run(self.store, run_id=self.spec.run_id, edition=EDITION_LABELS.get(self.spec.edition, self.spec.edition),
                   lab=self.inventory.lab,
                   inventory_hash=inv_hash, operator=self.inventory.operator,
                   options={"benches": list(self.spec.benches), "suites": list(self.spec.suites),
                            "options": list(self.spec.options), "campaign": self.spec.campaign})
        if self.resume:
            reopened = reopen_results(self.store, run_id=self.spec.run_id, cause="cancelled")
            append_event(self.store, kind="run-resumed", run_id=self.spec.run_id,
                         message=f"{reopened} cancelled test(s) reopened")
        for b in self.inventory.benches.values():
            register_bench(self.store, name=b.name, model=b.dut.model, lab=self.inventory.lab,
                           capabilities=b.capabilities)
        states = {b.name: b for b in stored_benches(self.store, lab=self.inventory.lab)}
        quarantined = {s: states[s].state_reason or "quarantined" for s in self.spec.benches
                       if states[s].state == "quarantined"}
        busy = {}
        for slot in self.spec.benches:
            if slot in quarantined:
                continue
            other = self.keeper.acquire(slot)
            if other is not None:
                busy[slot] = other
        if busy:
            self.keeper.release_all()
            raise CertlabError("bench(es) in use by another run: " + ", ".join(f"{b} (held by {h})" for b, h in busy.items())
                               + "; fix: wait for that run, or leave these out with --bench")
        self.keeper.start_heartbeat()
        set_run_status(self.store, run_id=self.spec.run_id, status="running")
        append_event(self.store, kind="run-started" if not self.resume else "run-running", run_id=self.spec.run_id,
                     message=f"benches {', '.join(self.spec.benches)}")
        return quarantined

    def _loop(self) -> bool:
        """Wait for items, react to their ends; True if the operator cancelled."""
        assert self.progress is not None
        shown = 0.0
        while self.executor.busy() or self.waiting:
            if self._cancel.is_set():
                self._stop_everything()
                return True
            ended = self.executor.wait(POLL)
            for outcome in ended:
                self._after(outcome)
            self._place_waiting()
            if ended or time.monotonic() - shown >= PROGRESS_EVERY:
                self.progress.refresh()
                shown = time.monotonic()
        return False

    # --- items ------------------------------------------------------------------------------
    def _item(self, bench: str, slot: str, *, attempt: int = 1, nodeids: tuple[str, ...] = (),
              resume: bool = False) -> WorkItem:
        return WorkItem(run_id=self.spec.run_id, inventory=self.spec.inventory, bench=bench, slot=slot,
                        suites=self.spec.suites, run_dir=str(self.run_dir), options=self.spec.options,
                        nodeids=nodeids, attempt=attempt, resume=resume)

    def _submit(self, item: WorkItem) -> None:
        self._marks[item.key] = last_event_id(self.store)
        if not item.plan_only:
            self.active.add(item.bench)
            self.used.add(item.bench)
        self.executor.submit(item)

    def _after(self, outcome: Outcome) -> None:
        item = outcome.item
        self.active.discard(item.bench)
        if outcome.lost is not None:  # its machine is gone: nothing of the bench is at fault
            self._note(item.slot, outcome.lost)
            append_event(self.store, kind="labhost-lost", run_id=self.spec.run_id, bench=item.slot,
                         message=f"{item.key}: {outcome.lost}")
            if item.plan_only:
                self._finalise_after.pop(item.key, None)
                finalise_unfinished(self.store, run_id=self.spec.run_id, bench=item.slot, cause="lab-fault",
                                    reason=f"not run: {outcome.lost}")
            else:
                again = reopen_unevidenced(self.store, run_id=self.spec.run_id, bench=item.slot, attempt=item.attempt,
                                           root=self.run_dir, reason=f"not run: its evidence was lost ({outcome.lost})")
                if again:
                    append_event(self.store, kind="evidence-lost", run_id=self.spec.run_id, bench=item.slot,
                                 message=f"{len(again)} finished test(s) run again: {outcome.lost}")
                self._take_over(item, f"is unreachable: {outcome.lost}")
            return
        if item.plan_only:
            finalise_unfinished(self.store, run_id=self.spec.run_id, bench=item.slot, cause="lab-fault",
                                reason=self._finalise_after.pop(item.key))
            return
        if outcome.returncode not in (0, 1, 5):  # 0 pass, 1 failures, 5 nothing left to run
            where = outcome.log.relative_to(self.run_dir) if outcome.log else "its log"
            self._note(item.slot, f"worker on {item.bench} ended with exit {outcome.returncode}; see {where}")
            append_event(self.store, kind="worker-error", run_id=self.spec.run_id, bench=item.slot,
                         message=f"{item.key} exit {outcome.returncode}: {_tail(outcome.log)}")
        failed_check = [e for e in events(self.store, run_id=self.spec.run_id, bench=item.slot,
                                          after_id=self._marks.get(item.key, 0), limit=10_000)
                        if e.kind == "health-check-failed" and e.message.startswith(f"{item.bench}:")]
        if failed_check:
            cause = failed_check[-1].message.split(": ", 1)[-1]
            quarantine_bench(self.store, bench=item.bench, reason=f"failed its health check: {cause}")
            self.keeper.release(item.bench)
            self._note(item.bench, "quarantined: failed its health check")
            self._take_over(item, f"failed its health check ({cause})")
            return
        undecided = retry_candidates(self.store, run_id=self.spec.run_id, bench=item.slot, attempt=item.attempt)
        if not undecided:
            if outcome.returncode in (0, 1):  # pytest ran to the end: a clean item breaks a run of faults
                clear_bench_faults(self.store, bench=item.bench)
            return
        cause = undecided[0].reason
        faults = note_bench_fault(self.store, bench=item.bench, run_id=self.spec.run_id,
                                  message=f"{len(undecided)} test(s) undecided: {cause}")
        if faults >= FAULT_LIMIT:
            quarantine_bench(self.store, bench=item.bench, reason=f"{faults} runs in a row with lab faults, last: {cause}")
            self._note(item.bench, f"quarantined after {faults} runs with lab faults")
        if item.attempt == 1:  # once: a second lab fault is the answer
            retry = self._item("", item.slot, attempt=2, nodeids=tuple(r.nodeid for r in undecided))
            self._to_spare(retry, f"lab fault on {item.bench}: {cause}")

    def _take_over(self, item: WorkItem, why: str) -> None:
        """Give a slot's unfinished work (and what a lab fault left undecided) to a spare bench."""
        rows = [r for r in results(self.store, run_id=self.spec.run_id) if r.bench == item.slot]
        todo = tuple(r.nodeid for r in rows if not r.final or (r.cause == "lab-fault" and r.attempt == item.attempt))
        if rows and not todo:
            return
        successor = self._item("", item.slot, attempt=item.attempt + 1, nodeids=todo)
        self._to_spare(successor, f"bench {item.bench} {why}")

    def _to_spare(self, item: WorkItem, why: str) -> None:
        self.waiting.append((item, why))
        self._place_waiting()

    def _place_waiting(self) -> None:
        still = []
        for item, why in self.waiting:
            spare, any_left = self._spare_for(item.slot)
            if spare is not None:
                placed = dataclasses.replace(item, bench=spare)
                self._note(item.slot, f"{why}; {spare} takes over")
                append_event(self.store, kind="takeover", run_id=self.spec.run_id, bench=item.slot,
                             message=f"{spare} takes over {len(item.nodeids) or 'all'} test(s): {why}")
                self._submit(placed)
            elif any_left:
                still.append((item, why))  # a spare is busy with other work: wait for it
            else:
                self._no_spare(item, why)
        self.waiting = still

    def _no_spare(self, item: WorkItem, why: str) -> None:
        """Nobody can take the work: what a lab fault decided stays INCONCLUSIVE with its cause."""
        model = self.inventory.bench(item.slot).dut.model
        append_event(self.store, kind="no-spare", run_id=self.spec.run_id, bench=item.slot,
                     message=f"{why}; no spare {model} bench")
        reason = f"not run: {why}; no spare bench with a {model} sample was free to take over"
        if not item.nodeids and not self._has_results(item.slot):
            # the slot never planned its tests (quarantined from the start): plan them without
            # touching the bench, so that each test still gets its INCONCLUSIVE verdict and cause
            planner = dataclasses.replace(item, bench=item.slot, plan_only=True, health_check=False)
            self._finalise_after[planner.key] = reason
            self._submit(planner)
            return
        finalise_unfinished(self.store, run_id=self.spec.run_id, bench=item.slot, cause="lab-fault", reason=reason)

    def _has_results(self, slot: str) -> bool:
        return bool(result_counts(self.store, run_id=self.spec.run_id).get(slot))

    def _spare_for(self, slot: str) -> tuple[str | None, bool]:
        """A leased spare for this slot, or None and whether one may still become free."""
        if not self._spares:
            return None, False
        want = self.inventory.bench(slot)
        states = {b.name: b.state for b in stored_benches(self.store, lab=self.inventory.lab)}
        busy_left = False
        for b in self.inventory.benches.values():
            if (b.name in self.spec.benches or b.dut.model != want.dut.model
                    or not set(want.capabilities) <= set(b.capabilities) or states.get(b.name) == "quarantined"
                    or not self.executor.usable(b.name)):
                continue
            if b.name in self.active:
                busy_left = True
                continue
            if b.name in self.keeper.held or self.keeper.acquire(b.name) is None:
                return b.name, True
        return None, busy_left

    def _note(self, bench: str, text: str) -> None:
        if self.progress is not None:
            self.progress.note(bench, text)

    # --- the end ----------------------------------------------------------------------------
    def _stop_everything(self) -> None:
        self._note(self.spec.benches[0], "cancelling: stopping workers, switching DUTs off")
        self.executor.stop(STOP_GRACE)
        self.waiting.clear()
        self._power_off(sorted(self.used))
        finalise_unfinished(self.store, run_id=self.spec.run_id, cause="cancelled",
                            reason="cancelled by the operator before this test finished")

    def _power_off(self, names: list[str]) -> None:
        for name, error in self.executor.power_off(names).items():
            if error is None:
                append_event(self.store, kind="power-off", run_id=self.spec.run_id, bench=name, message="run cancelled")
            else:
                append_event(self.store, kind="power-off-failed", run_id=self.spec.run_id, bench=name, message=error)

    def _finish(self, cancelled: bool) -> RunOutcome:
        try:
            if not cancelled:
                finalise_unfinished(self.store, run_id=self.spec.run_id, cause="not-run",
                                    reason="not run: its worker ended before it (see logs/ in the run directory)")
            doc = export_verdicts(self.store, run_id=self.spec.run_id)
            write_json(self.run_dir / "verdicts.json", doc)
            write_junit(self.run_dir / "junit.xml", doc, models=bench_models(self.inventory))  # for Jenkins and GitLab
            set_run_status(self.store, run_id=self.spec.run_id, status="cancelled" if cancelled else "finished")
            append_event(self.store, kind="run-cancelled" if cancelled else "run-finished", run_id=self.spec.run_id)
        finally:
            self.keeper.stop_heartbeat()
            if self._owns_leases:
                self.keeper.release_all()
        out_of_pool = {b.name: b.state_reason or "" for b in stored_benches(self.store, lab=self.inventory.lab)
                       if b.state == "quarantined" and (b.name in self.spec.benches or b.name in self.used)}
        return RunOutcome(self.run_dir, doc, Counter(r["verdict"] for r in doc["results"]), cancelled, out_of_pool)


def _tail(log: Path | None, lines: int = 3) -> str:
    """The last lines of a worker's log, for the event that says why it stopped."""
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:]) if log else ""
    except OSError:
        return ""

