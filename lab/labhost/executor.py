"""The orchestrator's side of lab hosts: the Executor that sends work items through the broker.

Each item becomes an attempt with a fencing token in the store, then a Celery message on its
bench's queue. The executor watches two things: results arriving (the item's files are
unpacked into the run directory, hash-checked) and the hosts' heartbeats. A host silent for
LOST_AFTER loses its items: their tokens are superseded, so whatever the host still does with
them counts for nothing, and the orchestrator gives the unfinished tests to a spare.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from lab.inventory import Inventory
from lab.labhost.broker import POWER_OFF, RUN_ITEM, BrokerSettings, bench_queue, make_app
from lab.labhost.evidence import EvidenceTransferError, Pack, unpack
from lab.labhost.inputs import attach_inputs
from lab.labhost.task import files_key
from lab.labhost.watch import HostWatch
from lab.orchestrator.executor import LocalExecutor, Outcome
from lab.orchestrator.workitem import WorkItem
from lab.store import Store, append_event, end_dispatch, new_dispatch, set_task_id

POLL = 0.1  # seconds between looks at the results
FETCH_TIMEOUT = 30.0  # seconds to read a finished item's result (its files) from Redis
POWER_OFF_WAIT = 60.0  # seconds the cancelled run waits for its DUTs to be switched off
FAILED = 3  # the returncode of an item whose lab host could not finish it
MAX_PACKS_PER_LOOK = 50  # streamed packs written per item per look, so one item cannot stall the loop


@dataclass
class _Sent:
    item: WorkItem
    token: int
    result: object  # celery AsyncResult
    labhost: str
    sent: float


class RemoteExecutor:
    def __init__(self, run_dir: Path, inventory: Inventory, store: Store, settings: BrokerSettings) -> None:
        self.run_dir = run_dir
        self.inventory = inventory
        self.store = store
        self.hosts = HostWatch(settings, inventory)
        self.app = make_app(settings)
        self._sent: list[_Sent] = []
        # a plan-only item collects tests and touches no bench: it runs here, even when every host is gone
        self._here = LocalExecutor(run_dir, max_workers=1, inventory=inventory)
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)

    # --- Executor ---------------------------------------------------------------------------
    def submit(self, item: WorkItem) -> None:
        if item.plan_only:
            self._here.submit(item)
            return
        host = self.hosts.host_of(item.bench)
        item = attach_inputs(item, self.inventory)  # the host tests with the files this run recorded
        token = new_dispatch(self.store, run_id=item.run_id, item_key=item.key, slot=item.slot, bench=item.bench,
                             labhost=host, attempt=item.attempt)
        result = self.app.send_task(RUN_ITEM, args=[item.to_json(), token],
                                    queue=bench_queue(self.inventory.lab, item.bench))
        set_task_id(self.store, token=token, task_id=result.id)
        self._sent.append(_Sent(item, token, result, host, time.monotonic()))

    def busy(self) -> int:
        return len(self._sent) + self._here.busy()

    def running(self) -> list[WorkItem]:
        return [s.item for s in self._sent] + self._here.running()

    def usable(self, bench: str) -> bool:
        return self.hosts.why_unusable(bench) is None

    def wait(self, timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            ended = self._here.wait(0) + self._collect()
            if ended or not self.busy() or time.monotonic() >= deadline:
                return ended
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))

    def stop(self, grace: float) -> list[Outcome]:
        """Cancel every attempt (their hosts interrupt pytest within a second), revoke what is queued."""
        for s in self._sent:
            end_dispatch(self.store, token=s.token, state="cancelled", note="run cancelled by the operator")
        if self._sent:
            self.app.control.revoke([s.result.id for s in self._sent])
        here = self._here.stop(grace)  # after the hosts were told: both stop within the same grace
        deadline = time.monotonic() + grace + 5.0
        ended: list[Outcome] = []
        while self._sent and time.monotonic() < deadline:
            ended += [self._arrived(s) for s in self._ready()]
            time.sleep(POLL)
        for s in self._sent:  # queued and never started, or its host is gone
            ended.append(Outcome(s.item, FAILED, time.monotonic() - s.sent, None, lost=None))
        self._sent.clear()
        return here + ended

    def power_off(self, benches: list[str]) -> dict[str, str | None]:
        answers: dict[str, str | None] = {}
        pending = {}
        for name in benches:
            why = self.hosts.why_lost(self.hosts.host_of(name), waited=float("inf"))
            if why is not None:
                answers[name] = f"{why}: its DUT could not be switched off from here"
                continue
            pending[name] = self.app.send_task(POWER_OFF, args=[name], queue=bench_queue(self.inventory.lab, name))
        deadline = time.monotonic() + POWER_OFF_WAIT
        while pending and time.monotonic() < deadline:
            for name, res in list(pending.items()):
                if res.ready():
                    value = res.get(timeout=FETCH_TIMEOUT, propagate=False)
                    ok = isinstance(value, dict) and value.get("ok")
                    answers[name] = None if ok else str(value.get("error") if isinstance(value, dict) else value)
                    del pending[name]
            time.sleep(POLL)
        for name in pending:
            answers[name] = f"lab host {self.hosts.host_of(name)} did not switch it off within {POWER_OFF_WAIT:.0f} s"
        return answers

    def close(self) -> None:
        try:
            self.app.close()
        finally:
            self.hosts.client.close()

    # --- results and losses -------------------------------------------------------------------
    def _ready(self) -> list[_Sent]:
        done = [s for s in self._sent if s.result.ready()]
        for s in done:
            self._sent.remove(s)
        return done

    def _collect(self) -> list[Outcome]:
        ended = [self._arrived(s) for s in self._ready()]
        for s in list(self._sent):
            self._drain(s)
            why = self.hosts.why_lost(s.labhost, waited=time.monotonic() - s.sent)
            if why is None and s.result.state == "PENDING":  # not started: is its bench served at all?
                refused = self.hosts.refusal(s.item.bench)
                if refused is not None and time.monotonic() - s.sent > 2 * POLL:
                    why = f"bench {s.item.bench} {refused}"
            if why is None:
                continue
            self._sent.remove(s)
            end_dispatch(self.store, token=s.token, state="superseded", note=why)
            self.app.control.revoke(s.result.id)
            log = self._write_log(s.item, f"certlab: {why}; attempt {s.token} superseded\n")
            ended.append(Outcome(s.item, FAILED, time.monotonic() - s.sent, log, lost=why))
        return ended

    def _drain(self, s: _Sent) -> None:
        """Write the files the item streamed so far into the run directory (bounded per call)."""
        for _ in range(MAX_PACKS_PER_LOOK):
            try:
                raw = self.hosts.client.lpop(files_key(s.token))
            except Exception:  # noqa: BLE001 - the broker is unreachable: the files wait in it
                return
            if raw is None:
                return
            try:
                unpack(Pack.from_wire(json.loads(raw)), self.run_dir)
            except (EvidenceTransferError, ValueError) as exc:
                append_event(self.store, kind="evidence-transfer-failed", run_id=s.item.run_id, bench=s.item.slot,
                             message=f"{s.item.key} from lab host {s.labhost} (streamed): {exc}")

    def _arrived(self, s: _Sent) -> Outcome:
        self._drain(s)  # what streamed first, so the final pack's whole files come last
        seconds = time.monotonic() - s.sent
        value = s.result.get(timeout=FETCH_TIMEOUT, propagate=False)
        if s.result.failed() or not isinstance(value, dict):
            why = f"lab host {s.labhost} failed the item: {value!r}"
            end_dispatch(self.store, token=s.token, state="superseded", note=why)
            return Outcome(s.item, FAILED, seconds, self._write_log(s.item, why + "\n"), lost=why)
        s.result.forget()  # its files are large: Redis need not keep them once they are here
        self._forget_stream(s)
        if value.get("discarded"):
            why = f"lab host {s.labhost} discarded the item: {value.get('why')}"
            end_dispatch(self.store, token=s.token, state="superseded", note=why)
            return Outcome(s.item, FAILED, seconds, self._write_log(s.item, why + "\n"), lost=why)
        try:
            unpack(Pack.from_wire(value.get("files") or {}), self.run_dir)
        except EvidenceTransferError as exc:
            append_event(self.store, kind="evidence-transfer-failed", run_id=s.item.run_id, bench=s.item.slot,
                         message=f"{s.item.key} from lab host {s.labhost}: {exc}")
            return Outcome(s.item, FAILED, seconds, self._write_log(s.item, f"certlab: evidence transfer failed: {exc}\n"))
        log = self.run_dir / value["log"] if value.get("log") else None
        return Outcome(s.item, int(value.get("returncode", FAILED)), float(value.get("seconds", seconds)), log)

    def _forget_stream(self, s: _Sent) -> None:
        try:
            self.hosts.client.delete(files_key(s.token))
        except Exception:  # noqa: BLE001 - it expires on its own
            pass

    def _write_log(self, item: WorkItem, text: str) -> Path:
        log = self.run_dir / "logs" / f"pytest-{item.slug}.log"
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(text)
        return log
