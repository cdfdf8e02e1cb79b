"""Step recording for driver actions.

Drivers announce each hardware action as a step; whoever runs them (the pytest plugin, the
`lab check` command) decides where steps go (Allure, a log). No global registry: a recorder is
handed to each driver, so parallel benches never share one.
"""

from __future__ import annotations

import contextlib
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
