"""Where work items execute. The orchestrator sees only this narrow interface.

`LocalExecutor` is a process pool on this machine: one worker process per item, at most
`max_workers` at once, the rest waiting in submission order. Workers stay in the orchestrator's
process group, so a Ctrl-C in the terminal, or a kill of the whole group, reaches them too: no
orphan keeps driving a bench that nobody watches. `lab.labhost.executor.RemoteExecutor` (Celery
+ Redis, lab hosts on other machines) implements the same methods; work items are JSON and
results come back through the store, so suites and fixtures do not change.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab.inventory import Inventory
from lab.orchestrator.workitem import WorkItem


@dataclass(frozen=True)
class Outcome:
    item: WorkItem
    returncode: int
    seconds: float
    log: Path | None
    lost: str | None = None  # the item's machine was lost (why): its unfinished work goes elsewhere


class Executor(Protocol):
    def submit(self, item: WorkItem) -> None:
        """Queue an item; it starts when a worker slot is free."""

    def wait(self, timeout: float) -> list[Outcome]:
        """Items that ended since the last call; waits at most `timeout` seconds for one."""

    def busy(self) -> int:
        """Items submitted and not yet reported by `wait`."""

    def stop(self, grace: float) -> list[Outcome]:
        """Interrupt every running item (as Ctrl-C would), drop the waiting ones, kill after `grace` s."""

    def usable(self, bench: str) -> bool:
        """Whether work sent to this bench now would be taken (its machine is up and serving it)."""

    def power_off(self, benches: list[str]) -> dict[str, str | None]:
        """Switch these benches' DUTs off; per bench, None or what went wrong."""

    def close(self) -> None:
        """Let go of connections (the broker's); running items are the orchestrator's to stop."""


@dataclass
class _Running:
    item: WorkItem
    proc: subprocess.Popen
    started: float
    log: Path


class LocalExecutor:
    def __init__(self, run_dir: Path, *, max_workers: int, inventory: Inventory) -> None:
        self.run_dir = run_dir
        self.inventory = inventory
        self.max_workers = max(1, max_workers)
        self._waiting: deque[WorkItem] = deque()
        self._running: list[_Running] = []
        (run_dir / "work").mkdir(parents=True, exist_ok=True)
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)

    def submit(self, item: WorkItem) -> None:
        self._waiting.append(item)
        self._start_waiting()

    def busy(self) -> int:
        return len(self._waiting) + len(self._running)

    def running(self) -> list[WorkItem]:
        return [r.item for r in self._running]

    def _start_waiting(self) -> None:
        while self._waiting and len(self._running) < self.max_workers:
            item = self._waiting.popleft()
            name = item.slug
            spec = self.run_dir / "work" / f"{name}.json"
            spec.write_text(item.to_json(), encoding="utf-8")
            log = self.run_dir / "logs" / f"pytest-{name}.log"
            with open(log, "ab") as fh:
                proc = subprocess.Popen([sys.executable, "-P", "-m", "lab.orchestrator.worker", str(spec)],
                                        stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self._running.append(_Running(item, proc, time.monotonic(), log))

    def _reap(self) -> list[Outcome]:
        done = [r for r in self._running if r.proc.poll() is not None]
        for r in done:
            self._running.remove(r)
        return [Outcome(r.item, r.proc.returncode, time.monotonic() - r.started, r.log) for r in done]

    def wait(self, timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            ended = self._reap()
            self._start_waiting()
            if ended or not self._running or time.monotonic() >= deadline:
                return ended
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def stop(self, grace: float) -> list[Outcome]:
        self._waiting.clear()
        for r in self._running:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        while self._running and any(r.proc.poll() is None for r in self._running) and time.monotonic() < deadline:
            time.sleep(0.05)
        for r in self._running:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(timeout=10)
        return self._reap()

    def usable(self, bench: str) -> bool:
        return True  # every bench hangs off this machine

    def close(self) -> None:
        pass

    def power_off(self, benches: list[str]) -> dict[str, str | None]:
        from lab.bench import Bench

        def off(name: str) -> str | None:
            bench = Bench(self.inventory, name, evidence_dir=self.run_dir / "evidence" / name)
            try:
                bench.power.off()
                return None
            except Exception as exc:  # noqa: BLE001 - a dead relay must not stop the others
                return str(exc)
            finally:
                bench.close()

        if not benches:
            return {}
        with ThreadPoolExecutor(max_workers=len(benches)) as pool:
            return dict(zip(benches, pool.map(off, benches)))
