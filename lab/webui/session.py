"""Browser sessions, kept in the store (table `web_sessions`) so every server process sees them.

The cookie holds 32 random bytes; the store only their SHA-256 (a copy of the database opens no
session). A session ends after `idle` without a request (CERTLAB_SESSION_IDLE_MIN, default 30 min),
12 h after login whatever happens, at logout, or at the next request once its user is revoked.
Each session has one CSRF token, which every unsafe page request must echo (lab/webui/guard.py).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from lab.actions.context import Caller
from lab.api.ratelimit import RateLimiter
from lab.errors import CertlabError
from lab.store.db import Store
from lab.store.models import Organisation, User, WebSession, utcnow
from lab.store.unit import reading, unit

COOKIE = "certlab_session"
LOGIN_COOKIE = "certlab_login"  # the login form's CSRF token (double submit: there is no session yet)
TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is written at most this often: reads stay reads, mostly


@dataclass(frozen=True)
class WebSettings:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if env is None else env
        raw = env.get("CERTLAB_SESSION_IDLE_MIN", "")
        if not raw:
            return cls()
        try:
            minutes = float(raw)
        except ValueError:
            minutes = -1.0
        if not 0 < minutes <= 12 * 60:
            raise CertlabError(f"$CERTLAB_SESSION_IDLE_MIN={raw!r}: give minutes between 1 and 720, or unset it")
        return cls(idle=timedelta(minutes=minutes))


LOGIN_PER_SECOND, LOGIN_BURST = 1 / 30, 10  # per user name + client address: 10 sign-ins at once, then one per 30 s


def _login_limiter() -> RateLimiter:
    return RateLimiter(LOGIN_PER_SECOND, LOGIN_BURST)  # in memory; the app's shares a file (lab.webui.install)


@dataclass
class WebCore:
    """What the web app keeps per server (app.state.web): its settings, its clock (tests move it)
    and the sign-in limiter (keyed by user name + client address)."""

    settings: WebSettings = field(default_factory=WebSettings.from_env)
    clock: Callable[[], datetime] = utcnow
    login_limiter: RateLimiter = field(default_factory=_login_limiter)


@dataclass(frozen=True)
class SessionView:
    """A live session as a request sees it."""

    key: str  # the stored id (SHA-256 of the cookie value)
    caller: Caller
    csrf: str
    expires_at: datetime  # whichever comes first: idle or absolute expiry
    notice: str | None
    ends_at: datetime | None = None  # the absolute end (12 h after sign-in), however active


EXPIRED = "expired"  # what `load` answers for a session that ran out (the login page says so)


def key_of(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8")).hexdigest()


def open_session(store: Store, user_id: int, *, now: datetime, settings: WebSettings,
                 notice: str | None = None) -> tuple[str, str]:
    """A new session for the user: (cookie value, csrf token)."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with unit(store) as s:
        s.add(WebSession(id=key_of(cookie), user_id=user_id, csrf=csrf, created_at=now, last_seen_at=now,
                         expires_at=now + settings.absolute, notice=notice))
    return cookie, csrf


def load(store: Store, cookie: str | None, *, now: datetime, settings: WebSettings) -> SessionView | str | None:
    """The live session of `cookie`; EXPIRED when it ran out (idle, absolute, or its user revoked: the
    row is deleted); None without one. One indexed read, plus a write at most every TOUCH_EVERY."""
    if not cookie:
        return None
    key = key_of(cookie)
    with reading(store) as s:
        row = s.execute(select(WebSession, User.name, User.role, User.org_id, User.revoked_at, Organisation.name)
                        .join(User, User.id == WebSession.user_id).join(Organisation, Organisation.id == User.org_id)
                        .where(WebSession.id == key)).first()
    if row is None:
        return None
    web, name, role, org_id, revoked_at, org = row
    if revoked_at is not None or now >= web.expires_at or now - web.last_seen_at >= settings.idle:
        end_session(store, cookie)
        return EXPIRED
    if now - web.last_seen_at >= TOUCH_EVERY:
        with unit(store) as s:
            s.execute(update(WebSession).where(WebSession.id == key).values(last_seen_at=now))
    return SessionView(key=key, caller=Caller(id=web.user_id, name=name, role=role, org_id=org_id, org=org),
                       csrf=web.csrf, expires_at=min(web.expires_at, now + settings.idle), notice=web.notice,
                       ends_at=web.expires_at)


def end_session(store: Store, cookie: str) -> None:
    with unit(store) as s:
        s.execute(delete(WebSession).where(WebSession.id == key_of(cookie)))


def set_notice(store: Store, key: str, notice: str | None) -> None:
    """The one-line message the session's next page shows (None clears it)."""
    with unit(store) as s:
        s.execute(update(WebSession).where(WebSession.id == key).values(notice=notice))


def purge_expired(store: Store, *, now: datetime, settings: WebSettings) -> int:
    """Delete sessions past their absolute or idle end (at each login: the table stays small)."""
    with unit(store) as s:
        gone = s.execute(delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.last_seen_at <= now - settings.idle)))
        return int(gone.rowcount or 0)
