"""Step recording for driver actions.

Drivers announce each hardware action as a step; whoever runs them (the pytest plugin, the
`lab check` command) decides where steps go (Allure, a log). No global registry: a recorder is
handed to each driver, so parallel benches never share one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Protocol


class StepRecorder(Protocol):
    def step(self, title: str, **params: object) -> contextlib.AbstractContextManager[None]: ...


class NullSteps:
    """Records nothing; the default for drivers used outside a test."""

    @contextlib.contextmanager
    def step(self, title: str, **params: object) -> Iterator[None]:
        yield


class ListSteps:
    """Keeps (title, params, seconds, error) tuples; handy for `lab check` and certlab's own tests."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, object], float, str | None]] = []

    @contextlib.contextmanager
    def step(self, title: str, **params: object) -> Iterator[None]:
        start = time.monotonic()
        error: str | None = None
        try:
            yield
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.records.append((title, dict(params), time.monotonic() - start, error))


class StepClock:
    """A recorder that passes every step on to `inner` and measures the wall time during which at
    least one step was in progress: how long a test waited on the bench's drivers (console,
    SSH, scans, captures, power), as opposed to its own computing. Steps may nest or overlap in
    threads (a capture running while the console is used); overlapping time counts once.
    `take()` returns the time gathered since the last `take()`."""

    def __init__(self, inner: StepRecorder | None = None, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner or NullSteps()
        self._clock = clock
        self._lock = threading.Lock()
        self._active = 0
        self._since = 0.0
        self._gathered = 0.0

    @contextlib.contextmanager
    def step(self, title: str, **params: object) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                self._since = self._clock()
            self._active += 1
        try:
            with self.inner.step(title, **params):
                yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._gathered += self._clock() - self._since

    def take(self) -> float:
        with self._lock:
            now = self._clock()
            if self._active:
                self._gathered += now - self._since
                self._since = now
            gathered, self._gathered = self._gathered, 0.0
        return gathered
