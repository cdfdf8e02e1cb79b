"""Lab-host heartbeats in Redis: who is alive, which benches each serves, and how recently.

The orchestrator declares a host lost when its heartbeat is older than LOST_AFTER; the host
itself stops its running work once it could not write a heartbeat for SELF_FENCE_AFTER, which is
shorter, so that by the time another host takes the work over, the first one has let go of it.
Times are wall-clock seconds of the writer, compared with a margin (hosts run NTP).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

BEAT_EVERY = 1.0  # seconds between a host's heartbeats
SELF_FENCE_AFTER = 5.0  # a host that could not beat this long stops its work
LOST_AFTER = 10.0  # the orchestrator gives a silent host's work to another host after this
BEAT_TTL = 3600  # a stopped host stays listed (as silent) for an hour


def host_key(lab: str, host: str) -> str:
    return f"certlab:labhost:{lab}:{host}"


@dataclass(frozen=True)
class HostBeat:
    lab: str
    host: str
    at: float  # wall clock of the host's last beat
    pid: int
    version: str
    serving: tuple[str, ...]  # benches whose queue it consumes
    unhealthy: dict[str, str] = field(default_factory=dict)  # bench -> why it takes no work
    state: str = "serving"  # serving, stopping

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.at)

    def lost(self, now: float | None = None) -> bool:
        return self.state != "serving" or self.age(now) > LOST_AFTER

    def to_json(self) -> str:
        return json.dumps({"lab": self.lab, "host": self.host, "at": self.at, "pid": self.pid, "version": self.version,
                           "serving": list(self.serving), "unhealthy": self.unhealthy, "state": self.state})

    @classmethod
    def from_json(cls, text: str) -> HostBeat:
        d = json.loads(text)
        return cls(lab=d["lab"], host=d["host"], at=float(d["at"]), pid=int(d["pid"]), version=d.get("version", ""),
                   serving=tuple(d.get("serving") or ()), unhealthy=dict(d.get("unhealthy") or {}),
                   state=d.get("state", "serving"))


def write_beat(client, beat: HostBeat) -> None:
    client.set(host_key(beat.lab, beat.host), beat.to_json(), ex=BEAT_TTL)


def read_beats(client, lab: str | None) -> dict[tuple[str, str], HostBeat]:
    """Every host (of this lab, or of all labs) that beat within the last hour, by (lab, host)."""
    keys = sorted(client.scan_iter(match=host_key(lab or "*", "*"), count=100))[:1000]
    beats = {}
    for raw in client.mget(keys) if keys else []:
        if raw:
            beat = HostBeat.from_json(raw)
            beats[(beat.lab, beat.host)] = beat
    return beats
