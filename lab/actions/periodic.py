"""One background thread per app that does one round of work every `period` seconds until stopped.

The app's run follower (lab.actions.runs.settle_runs) and record keeper
(lab.actions.retests.settle_retests) are each one of these: their rounds are idempotent and
store-backed, so a round that fails (a store hiccup) is simply done again at the next tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Periodic:
    name: str
    work: Callable[[], object]
    period: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.work()
            except Exception:  # noqa: BLE001 - a failed round must not end the thread; the next one retries
                continue
