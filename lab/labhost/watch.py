"""The orchestrator's view of the lab hosts: which are alive, and which benches they serve."""

from __future__ import annotations

import time

from lab.errors import CertlabError
from lab.inventory import Inventory
from lab.labhost.beats import LOST_AFTER, HostBeat, read_beats
from lab.labhost.broker import BrokerSettings, redis_client

REFRESH_EVERY = 0.5  # seconds a reading of the heartbeats is reused
BROKER_GIVE_UP = 300.0  # seconds without the broker after which the orchestrator stops waiting for its hosts


class HostWatch:
    def __init__(self, settings: BrokerSettings, inventory: Inventory) -> None:
        self.settings = settings
        self.inventory = inventory
        self.client = redis_client(settings)
        self._beats: dict[str, HostBeat] = {}
        self._read_at = float("-inf")
        self._unreadable_since: float | None = None
        try:
            self.client.ping()
        except Exception as exc:  # noqa: BLE001
            raise CertlabError(f"cannot reach the broker {settings.shown}: {exc}; fix: start it, or check "
                               f"CERTLAB_BROKER_URL (address, password, TLS)") from None

    def beats(self) -> dict[str, HostBeat]:
        """This lab's hosts by name; a broker that does not answer keeps the last reading."""
        now = time.monotonic()
        if now - self._read_at >= REFRESH_EVERY:
            try:
                self._beats = {host: b for (_, host), b in read_beats(self.client, self.inventory.lab).items()}
                self._read_at = now
                self._unreadable_since = None
            except Exception:  # noqa: BLE001 - the orchestrator's own link to the broker is down
                self._unreadable_since = self._unreadable_since or now
        return self._beats

    def broker_silent_for(self) -> float:
        """Seconds the broker has not answered the orchestrator (0 when it answers)."""
        return 0.0 if self._unreadable_since is None else time.monotonic() - self._unreadable_since

    def host_of(self, bench: str) -> str:
        host = self.inventory.bench(bench).labhost
        if host is None:
            raise CertlabError(f"{self.inventory.path}: bench {bench} has no labhost; fix: add `labhost: NAME`")
        return host

    def why_lost(self, host: str, *, waited: float) -> str | None:
        """Why this host counts as lost now (None while it is alive, or may still appear)."""
        beat = self.beats().get(host)
        silent = self.broker_silent_for()
        if silent > BROKER_GIVE_UP:
            return f"lab host {host} unreachable: the broker has not answered this machine for {silent:.0f} s"
        if silent > 0:
            return None  # cannot tell yet: the orchestrator, not the host, may be the one cut off
        if beat is None:
            return f"lab host {host} lost: no heartbeat for {waited:.0f} s" if waited > LOST_AFTER else None
        if beat.state != "serving":
            return f"lab host {host} lost: it is {beat.state}"
        if beat.age() > LOST_AFTER:
            return f"lab host {host} lost: last heartbeat {beat.age():.0f} s ago"
        return None

    def refusal(self, bench: str) -> str | None:
        """Why the bench's host will not take its work (no live host, or the bench is unhealthy);
        None when it will, or may once its worker has started."""
        host = self.host_of(bench)
        beat = self.beats().get(host)
        if beat is None or beat.lost():
            return f"its lab host {host} is not serving (no recent heartbeat)"
        if bench in beat.unhealthy:
            return f"lab host {host} takes no work for it: {beat.unhealthy[bench]}"
        return None

    def why_unusable(self, bench: str) -> str | None:
        """None if the bench's host is alive and takes work for it now; else why not."""
        refused = self.refusal(bench)
        if refused is None and bench not in self.beats()[self.host_of(bench)].serving:
            return f"lab host {self.host_of(bench)} does not serve it (yet)"
        return refused
