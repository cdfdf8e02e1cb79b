"""Shared set-up for the benchmark scripts: a private simulated lab, up for the duration; a
server's readiness and keep-alive HTTP clients sharing a bounded budget of requests."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.bench import Bench  # noqa: E402
from lab.inventory import Inventory, load_inventory  # noqa: E402
from lab.sim.genlab import write_sim_inventory  # noqa: E402
from lab.sim.lab import SimLab  # noqa: E402


@contextlib.contextmanager
def sim_lab(lab: str, benches: int, *, scpi_port: int, subnet: int, **kwargs) -> Iterator[tuple[Inventory, SimLab]]:
    netns = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix=f"certlab-bench-{lab}-") as tmp:
        path = write_sim_inventory(Path(tmp), lab, benches, scpi_port=scpi_port, subnet=subnet, netns=netns,
                                   ssh_base_port=scpi_port + 100, **kwargs)
        inv = load_inventory(path)
        sim = SimLab(inv)
        try:
            yield inv, sim
        finally:
            sim.down()


def open_bench(inv: Inventory, name: str, tmp: Path) -> Bench:
    return Bench(inv, name, evidence_dir=tmp / name)


def median(values: list[float]) -> float:
    return statistics.median(values)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_health(port: int, server: subprocess.Popen, *, timeout_s: float, who: str,
                path: str = "/api/v1/health") -> None:
    """Until the server's health answers 200 (bounded): it migrates its store first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"{who}: the server exited ({server.returncode}): "
                             f"{server.stderr.read().decode()[-2000:] if server.stderr else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{who}: the server did not answer within {timeout_s:.0f} s")


@dataclass
class Load:
    """Keep-alive clients sharing a budget: at most `count` requests until `max_seconds` (both
    declared by the subclass, with what it sends); the latencies and errors they saw."""

    latencies: list[float] = field(default_factory=list, kw_only=True)
    errors: dict[str, int] = field(default_factory=dict, kw_only=True)
    issued: int = field(default=0, kw_only=True)
    wall: float = field(default=0.0, kw_only=True)
    lock: threading.Lock = field(default_factory=threading.Lock, kw_only=True)

    def take(self) -> bool:
        with self.lock:
            if self.issued >= self.count:  # type: ignore[attr-defined]
                return False
            self.issued += 1
            return True

    def note(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def drive(self, port: int, clients: int, send: Callable[[http.client.HTTPConnection], int], want: int,
              timeout_s: float) -> None:
        """`clients` threads, each on one kept connection, calling `send` (-> HTTP status) while budget lasts."""
        max_seconds: float = self.max_seconds  # type: ignore[attr-defined]
        deadline = time.monotonic() + max_seconds

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
            mine: list[float] = []
            try:
                while time.monotonic() < deadline and self.take():
                    t0 = time.perf_counter()
                    try:
                        status = send(conn)
                    except (OSError, http.client.HTTPException) as exc:
                        self.note(type(exc).__name__)
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
                        continue
                    mine.append(time.perf_counter() - t0)
                    if status != want:
                        self.note(f"HTTP {status}")
            finally:
                conn.close()
                with self.lock:
                    self.latencies.extend(mine)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max_seconds + timeout_s)
        self.wall = time.monotonic() - t0
