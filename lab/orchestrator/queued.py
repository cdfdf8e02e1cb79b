"""Queued runs: what `certlab queue add` stores, and how `certlab queue work` runs them.

A queued run asks for a DUT model and capabilities, not a bench: whichever bench of the lab
matches, passes its health check and is free first takes it. The payload holds only what a run
needs besides the bench (suites, edition, ICS, IXIT, options), as plain JSON, so that the
booking API and other hosts can queue runs the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console

from lab.errors import CertlabError, LabFault
from lab.install import RELEASE_OPTION
from lab.inventory import Inventory
from lab.orchestrator.dispatcher import BenchSlot, DispatchStats, Dispatcher
from lab.orchestrator.launch import check_labhosts, make_executor
from lab.labhost.broker import BrokerSettings
from lab.orchestrator.orchestrator import Orchestrator
from lab.orchestrator.inputs import record_inputs
from lab.orchestrator.rundir import RunSpec, create_run_dir, new_run_id, option_value
from lab.preflight import preflight
from lab.store import QueuedRun, Store, enqueue_run, finish_queued_run, queued_runs
from lab.store.scheduling import note_queued_run_id


def add(store: Store, *, model: str, capabilities: list[str], suites: list[str], options: list[str], edition: str,
        reports_dir: Path, priority: int = 0, requested_by: str | None = None,
        requested_by_user_id: int | None = None) -> int:
    payload = {"suites": suites, "options": options, "edition": edition, "reports_dir": str(reports_dir.resolve()),
               "requested_by": requested_by}
    if requested_by_user_id is not None:  # the booking service's user it was queued for (a record's re-test)
        payload["requested_by_user_id"] = requested_by_user_id
    return enqueue_run(store, model=model, capabilities=capabilities, payload=payload, priority=priority)


def _option(options: list[str], name: str) -> Path | None:
    value = option_value(options, name)
    return Path(value) if value is not None else None


def check_payload(inventory: Inventory, benches: list[str], payload: dict) -> None:
    """The queued run's inputs on these benches, by the same preflight as `certlab run` (CertlabError)."""
    options = [str(o) for o in payload.get("options") or ()]
    preflight(inventory, benches, str(payload.get("edition") or "v2"), ics=_option(options, "--ics"),
              ixit=_option(options, "--ixit"), assessments=_option(options, "--assessments"),
              suites=list(payload.get("suites") or []) or None, release=_option(options, RELEASE_OPTION))


def reject_bad_entries(store: Store, inventory: Inventory, console: Console) -> int:
    """Fail the pending entries this inventory could run but whose inputs are bad, before any bench is
    health-checked for them; the one line goes to the event log (`certlab queue`) and the console."""
    rejected = 0
    for q in queued_runs(store, states=("pending",)):
        benches = [b.name for b in inventory.benches.values() if b.dut.model == q.model]
        if not benches:
            continue
        try:
            check_payload(inventory, benches, q.payload or {})
        except CertlabError as exc:
            finish_queued_run(store, queued_id=q.id, state="failed", error=str(exc))
            console.print(f"queued run {q.id} refused: {exc}", highlight=False, soft_wrap=True)
            rejected += 1
    return rejected


def dispatcher_id() -> str:
    """Stable across restarts of the same worker on this host, unique among hosts."""
    return f"queue-worker@{socket.gethostname()}:{os.environ.get('CERTLAB_WORKER_NAME', 'default')}"


def work(store: Store, inventory: Inventory, *, max_seconds: float, max_runs: int | None,
         console: Console, follow: bool = False) -> DispatchStats:
    """Serve the queue with this inventory's benches until it is empty (or the limits are hit).

    With `follow` an empty queue is waited on (the dispatcher's bounded polls) instead, until
    SIGINT/SIGTERM: how a lab serves re-tests queued at any hour (`certlab queue work --follow`).
    """
    holder = dispatcher_id()
    reject_bad_entries(store, inventory, console)
    slots = [BenchSlot(b.name, b.dut.model, frozenset(b.capabilities)) for b in inventory.benches.values()]
    check_labhosts(inventory, [s.name for s in slots])
    settings = BrokerSettings.from_env()
    hosts = None
    if settings is not None:  # the benches hang off lab hosts, which probe them before they take work
        from lab.labhost.watch import HostWatch

        hosts = HostWatch(settings, inventory)

    def health(slot: BenchSlot) -> str | None:
        if hosts is not None:
            return hosts.why_unusable(slot.name)
        from lab.bench import Bench
        from lab.check import health_check

        bench = Bench(inventory, slot.name, evidence_dir=Path(tempfile.gettempdir()) / "certlab-health" / slot.name)
        try:
            health_check(bench)
            return None
        except LabFault as exc:
            return str(exc)
        finally:
            bench.close()

    def execute(queued: QueuedRun, slot: BenchSlot) -> str:
        p = queued.payload
        for key in ("suites", "edition", "reports_dir"):
            if key not in p:
                raise CertlabError(f"queued run {queued.id}: payload has no {key!r}; fix: queue it again with certlab queue add")
        check_payload(inventory, [slot.name], p)  # an entry queued after the worker started is checked here
        spec = RunSpec(run_id=new_run_id(), inventory=str(Path(inventory.path).resolve()), benches=(slot.name,),
                       suites=tuple(p["suites"]), options=tuple(p.get("options") or ()), edition=p["edition"],
                       store=store.url)
        run_dir = create_run_dir(Path(p["reports_dir"]), spec)
        note_queued_run_id(store, queued_id=queued.id, run_id=spec.run_id)
        record_inputs(run_dir, inventory, benches=spec.benches, edition=spec.edition, options=spec.options)
        console.print(f"queued run {queued.id} (priority {queued.priority}) -> bench {slot.name}: run {spec.run_id}",
                      highlight=False)
        quiet = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115 - closed with the run
        try:
            executor = make_executor(run_dir, inventory, store, max_workers=1)
            try:
                outcome = Orchestrator(spec, run_dir, inventory, store, executor=executor,
                                       console=quiet, lease_holder=holder, spares=False).run()
            finally:
                executor.close()
        finally:
            quiet.file.close()
        counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items()))
        console.print(f"queued run {queued.id} on {slot.name} finished: {counts or 'no results'} ({run_dir})",
                      highlight=False)
        return spec.run_id

    dispatcher = Dispatcher(store, holder=holder, slots=slots, execute=execute, health_check=health)
    if not follow:
        return dispatcher.run(max_seconds=max_seconds, max_runs=max_runs)
    with stop_on_signals(dispatcher.stop):
        console.print(f"serving the queue with {len(slots)} bench(es) until stopped (Ctrl-C)", highlight=False)
        return dispatcher.run(max_seconds=max_seconds, max_runs=max_runs, idle_exit=False)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call `stop` (the dispatcher drains and returns) while the block runs in the
    main thread; elsewhere signals cannot be caught and the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
