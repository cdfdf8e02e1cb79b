"""`certlab labhost serve`: one lab host's workers, their health, and its heartbeat.

The host takes work only for benches that answer: before a bench's worker starts, its relay
must identify itself and report its state (a quick probe that boots nothing; every item still
runs the full health check). A bench that fails is listed as unhealthy in the heartbeat, so the
orchestrator gives its work to a spare at once, and is probed again every RECHECK_EVERY seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from lab.errors import CertlabError, LabFault
from lab.inventory import Inventory
from lab.labhost.beats import BEAT_EVERY, HostBeat, write_beat
from lab.labhost.broker import BrokerSettings, redis_client

RECHECK_EVERY = 30.0  # seconds between probes of an unhealthy bench (or a worker that died)
STOP_GRACE = 30.0  # seconds the bench workers get to stop before they are killed


def bench_ready(inventory: Inventory, name: str, spool: Path) -> str | None:
    """None if the bench's relay answers; else why the bench takes no work."""
    from lab.bench import Bench

    bench = Bench(inventory, name, evidence_dir=spool / "health" / name)
    try:
        bench.power.identify()
        bench.power.is_on()
        return None
    except LabFault as exc:
        return f"{exc.kind}: {exc.cause}"
    except Exception as exc:  # noqa: BLE001 - whatever stops the relay, the bench is not fit
        return f"relay probe failed: {exc}"
    finally:
        bench.close()


@dataclass
class LabHost:
    inventory: Inventory
    name: str
    spool: Path
    settings: BrokerSettings
    console: Console
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    unhealthy: dict[str, str] = field(default_factory=dict)
    checked: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def benches(self) -> list[str]:
        return sorted(b.name for b in self.inventory.benches.values() if b.labhost == self.name)

    def run(self) -> int:
        if not self.benches:
            hosts = sorted({b.labhost for b in self.inventory.benches.values() if b.labhost})
            raise CertlabError(f"{self.inventory.path}: no bench has labhost {self.name!r} (lab hosts there: "
                               f"{', '.join(hosts) or 'none'}); fix: set certlab.labhost: {self.name} on this host's benches")
        client = redis_client(self.settings)
        try:
            client.ping()
        except Exception as exc:  # noqa: BLE001
            raise CertlabError(f"cannot reach the broker {self.settings.shown}: {exc}; fix: check CERTLAB_BROKER_URL, "
                               f"the broker's address and password, and the network") from None
        self.spool.mkdir(parents=True, exist_ok=True)
        self.console.print(f"lab host {self.name} of lab {self.inventory.lab}: benches {', '.join(self.benches)}; "
                           f"broker {self.settings.shown}", highlight=False)
        try:
            while not self.stop.is_set():
                self._tend()
                self._beat(client, "serving")
                self.stop.wait(BEAT_EVERY)
        finally:
            self._beat(client, "stopping")
            self._stop_workers()
        return 0

    def _tend(self) -> None:
        now = time.monotonic()
        for name in self.benches:
            proc = self.workers.get(name)
            if proc is not None and proc.poll() is None:
                continue
            if proc is not None:
                del self.workers[name]
                self.unhealthy[name] = f"its worker exited with {proc.returncode}"
                self.console.print(f"{name}: worker exited with {proc.returncode}", highlight=False)
            if now - self.checked.get(name, -RECHECK_EVERY) < RECHECK_EVERY:
                continue
            self.checked[name] = now
            why = bench_ready(self.inventory, name, self.spool)
            if why is not None:
                self.unhealthy[name] = why
                self.console.print(f"{name}: takes no work: {why}", highlight=False)
                continue
            self.unhealthy.pop(name, None)
            self.workers[name] = self._start_worker(name)
            self.console.print(f"{name}: taking work", highlight=False)

    def _start_worker(self, bench: str) -> subprocess.Popen:
        log = self.spool / "logs" / f"worker-{bench}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            return subprocess.Popen(
                [sys.executable, "-P", "-m", "lab.labhost.benchworker", "--lab", self.inventory.lab, "--host", self.name,
                 "--bench", bench, "--inventory", str(Path(self.inventory.path).resolve()), "--spool", str(self.spool)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _beat(self, client, state: str) -> None:
        serving = tuple(sorted(n for n, p in self.workers.items() if p.poll() is None))
        beat = HostBeat(lab=self.inventory.lab, host=self.name, at=time.time(), pid=os.getpid(), version=_version(),
                        serving=serving, unhealthy=dict(self.unhealthy), state=state)
        try:
            write_beat(client, beat)
        except Exception as exc:  # noqa: BLE001 - a missed beat is what partitions look like; keep going
            self.console.print(f"heartbeat not written: {exc}", highlight=False)

    def _stop_workers(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.workers.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _version() -> str:
    """certlab's installed version: `labhost list` shows hosts an upgrade has not reached yet."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("certlab")
    except PackageNotFoundError:
        return "unknown"
