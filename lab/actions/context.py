"""Who is calling (`Caller`) and what every action shares (`Services`): held by the app that
serves them (app.state.services), never by a module."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from lab.actions.inventories import InventoryCache
from lab.api.ratelimit import RateLimiter
from lab.api.settings import ApiSettings
from lab.catalog import Catalogs
from lab.reports.archive import ReportArchives
from lab.reports.verify import Verifications
from lab.store.accounts import LiveUsers
from lab.store.db import Store


@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    role: str
    org_id: int
    org: str

    @property
    def is_engineer(self) -> bool:
        return self.role == "engineer"


@dataclass
class CallerCache:
    """Tokens seen before -> their caller: a request then costs one primary-key read (is the user
    still live?, `Services.live`) instead of the token lookup with its organisation.

    Liveness is never remembered, only who the token belongs to (which does not change): a token
    revoked by `certlab users revoke`, in another process, is refused from the next request on.
    """

    size: int = 10_000
    _seen: dict[str, Caller] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> Caller | None:
        return self._seen.get(key)

    def put(self, key: str, who: Caller) -> None:
        with self._lock:
            if len(self._seen) >= self.size:
                self._seen.clear()  # rare: a flood of distinct tokens; all are looked up again
            self._seen[key] = who

    def drop(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)


@dataclass
class Services:
    """What the actions share, held by the app (app.state.services), never by a module."""

    store: Store
    settings: ApiSettings
    limiter: RateLimiter
    callers: CallerCache = field(default_factory=CallerCache)
    catalogs: Catalogs = field(default_factory=Catalogs)  # every ICS upload is checked against one
    archives: ReportArchives = field(default_factory=ReportArchives)  # built once per report version
    verifications: Verifications = field(default_factory=Verifications)  # recent `certlab verify` results
    inventories: InventoryCache = field(default_factory=InventoryCache)  # the bench board's reading
    live: LiveUsers = field(init=False)  # is a cached caller's user still live? asked on every request

    def __post_init__(self) -> None:
        self.live = LiveUsers(self.store)
