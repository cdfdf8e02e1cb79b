"""A token bucket per API token, kept by the app (no module state): bursts pass, floods get 429."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    per_second: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, last)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> float:
        """0 when the call may go ahead, else the seconds to wait before the next one will."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.per_second)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.per_second
