"""Bench reservations for one orchestrator: take, heartbeat, give back.

A lease expires when its holder stops heartbeating, so a dead orchestrator's benches return to
the pool by themselves. A resumed run on the same host may take over the leases of its own dead
predecessor at once instead of waiting for them to expire: the holder id names host and pid.
"""

from __future__ import annotations

import os
import socket
import threading

from lab.store import Store, acquire_lease, append_event, expire_leases, lease_holder, release_lease, renew_lease, take_over_lease


def holder_id(run_id: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def _dead_local_holder(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseKeeper:
    def __init__(self, store: Store, *, holder: str, ttl: float = 30.0) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, bench: str) -> str | None:
        """Lease `bench`; None on success, else who holds it."""
        expire_leases(self.store)
        if acquire_lease(self.store, bench=bench, holder=self.holder, ttl=self.ttl):
            self.held.add(bench)
            return None
        other = lease_holder(self.store, bench=bench)
        if other and _dead_local_holder(other) and take_over_lease(
                self.store, bench=bench, old_holder=other, holder=self.holder, ttl=self.ttl):
            self.held.add(bench)
            return None
        return other or "nobody (quarantined)"

    def release(self, bench: str) -> None:
        if bench in self.held:
            release_lease(self.store, bench=bench, holder=self.holder)
            self.held.discard(bench)

    def release_all(self) -> None:
        for bench in sorted(self.held):
            self.release(bench)

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            for bench in sorted(self.held):
                try:
                    if not renew_lease(self.store, bench=bench, holder=self.holder, ttl=self.ttl):
                        append_event(self.store, kind="lease-lost", bench=bench,
                                     message=f"{self.holder} lost its lease (expired and taken)")
                except Exception:  # noqa: BLE001 - a missed beat is retried; expiry is the safety net
                    pass
