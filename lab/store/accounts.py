"""API accounts: organisations (tenants) and users with one bearer token each.

The token is shown once, when the user is added; the store keeps only its SHA-256, so a copy of
the database opens no account. Revoking a user ends its token at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select

from lab.errors import CertlabError
from lab.store.db import Store
from lab.store.models import ROLES, Organisation, User, utcnow
from lab.store.unit import Target, reading, unit

TOKEN_PREFIX = "clt_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.@-]{0,127}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def organisation(target: Target, name: str) -> Organisation:
    """The organisation of that name, made on first use."""
    if not _NAME.fullmatch(name):
        raise CertlabError(f"--org {name!r}: use letters, digits, spaces, . _ @ - (at most 128 characters)")
    with unit(target) as s:
        org = s.scalars(select(Organisation).where(Organisation.name == name)).first()
        if org is None:
            org = Organisation(name=name)
            s.add(org)
            s.flush()
        return org


def add_user(target: Target, *, name: str, role: str, org: str) -> tuple[User, str]:
    """A new user and its token (returned once, never stored)."""
    if role not in ROLES:
        raise CertlabError(f"--role {role!r}: use one of {', '.join(ROLES)}")
    if not _NAME.fullmatch(name):
        raise CertlabError(f"user name {name!r}: use letters, digits, spaces, . _ @ - (at most 128 characters)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with unit(target) as s:
        if s.scalars(select(User).where(User.name == name)).first() is not None:
            raise CertlabError(f"user {name!r} exists; fix: pick another name, or `certlab users revoke {name}` "
                               f"and add it under a new name")
        user = User(name=name, role=role, org_id=organisation(s, org).id, token_hash=token_hash(token))
        s.add(user)
        s.flush()
        s.refresh(user)
        return user, token


def revoke_user(target: Target, name: str) -> User:
    with unit(target) as s:
        user = s.scalars(select(User).where(User.name == name)).first()
        if user is None:
            raise CertlabError(f"no user named {name!r}; `certlab users list` shows them")
        if user.revoked_at is None:
            user.revoked_at = utcnow()
        return user


def users(target: Target) -> list[User]:
    with unit(target) as s:
        return list(s.scalars(select(User).order_by(User.id)))


def user_for_token(target: Target, token: str) -> User | None:
    """The live user holding `token`, or None (unknown or revoked)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with reading(target) as s:
        user = s.scalars(select(User).where(User.token_hash == token_hash(token))).first()
        return user if user is not None and user.revoked_at is None else None


def is_live(target: Target, user_id: int) -> bool:
    """Whether the user's token still opens the API: one primary-key read, cheap enough for every request.

    A cache of tokens asks this instead of remembering liveness: `certlab users revoke` runs in
    another process (maybe on another host, for PostgreSQL) than the server, and the store is
    what both see, so a revocation holds from the next request on.
    """
    with reading(target) as s:
        return s.execute(select(User.id).where(User.id == user_id, User.revoked_at.is_(None))).first() is not None


@dataclass
class LiveUsers:
    """`is_live` for every request of a server: the same primary-key read, on one DBAPI connection
    kept open, without the pool checkout, session and ORM that cost ten times the read itself.

    Each read is its own transaction (SQLite's connections autocommit; elsewhere the read is
    rolled back at once), so it sees the latest commit: a revocation by another process holds
    from the next request on. One connection, under a lock: reads are short, and one per thread
    could take more connections than the pool lends (PostgreSQL). A broken connection is dropped
    and that read made through `is_live`, which names an unavailable store.
    """

    store: Store
    _conn: Any = field(default=None, init=False)  # the pool's DBAPI connection proxy
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        event.listen(self.store.engine, "engine_disposed", lambda _engine: self.close())  # Store.close()

    def __call__(self, user_id: int) -> bool:
        dialect = self.store.engine.dialect
        sql = f"SELECT 1 FROM users WHERE id = {'?' if dialect.paramstyle == 'qmark' else '%s'} AND revoked_at IS NULL"
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self.store.engine.raw_connection()
                cursor = self._conn.cursor()
                try:
                    cursor.execute(sql, (user_id,))
                    return cursor.fetchone() is not None
                finally:
                    cursor.close()
                    if self.store.dialect != "sqlite":
                        self._conn.rollback()  # a transaction left open would keep reading its snapshot
            except dialect.loaded_dbapi.Error:
                self._drop()
        return is_live(self.store, user_id)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()  # never back to the pool
            self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# --- passwords for the web login (`certlab users passwd`): scrypt, a salt per user, only the hash kept ---

PASSWORD_MIN = 10
_SCRYPT = {"n": 1 << 14, "r": 8, "p": 1}  # about 16 MiB and tens of milliseconds per check


def hash_password(password: str, *, salt: bytes | None = None, n: int = _SCRYPT["n"]) -> str:
    """`scrypt$n$r$p$<salt hex>$<hash hex>` of `password`, with a fresh random salt (`n`: the cost;
    only tests lower it, to sign in fast; the hash says its own cost)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, n=n, r=_SCRYPT["r"], p=_SCRYPT["p"])
    return f"scrypt${n}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


_DUMMY = f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${'00' * 16}${'00' * 32}"  # the work for an unknown user


def password_matches(stored: str | None, password: str) -> bool:
    """Whether `password` is the one `stored` was made from (constant-time compare; a malformed or
    missing hash matches nothing, after the same work, so the answer's time names no user)."""
    try:
        kind, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        given = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), dklen=len(digest) // 2,
                               n=int(n), r=int(r), p=int(p))
    except (ValueError, MemoryError):
        return False
    return stored is not None and kind == "scrypt" and hmac.compare_digest(given.hex(), digest)


def check_new_password(password: str) -> None:
    """A password `certlab users passwd` accepts, else one line saying why and the fix."""
    if len(password) < PASSWORD_MIN:
        raise CertlabError(f"password: at least {PASSWORD_MIN} characters; fix: choose a longer one "
                           f"(a few unrelated words work well)")
    if password != password.strip() or any(ord(c) < 32 for c in password):
        raise CertlabError("password: no leading/trailing spaces or control characters; fix: retype it")


def set_password(target: Target, name: str, password: str) -> User:
    """Give a live user a password for the web login (replacing any earlier one)."""
    check_new_password(password)
    with unit(target) as s:
        user = s.scalars(select(User).where(User.name == name)).first()
        if user is None:
            raise CertlabError(f"no user named {name!r}; `certlab users list` shows them")
        if user.revoked_at is not None:
            raise CertlabError(f"user {name!r} is revoked; fix: add a new user with `certlab users add`")
        user.password_hash = hash_password(password)
        return user


def user_for_password(target: Target, name: str, password: str) -> User | None:
    """The live user `name` if `password` is its password, else None (the same work either way)."""
    with reading(target) as s:
        user = s.scalars(select(User).where(User.name == name)).first()
    stored = user.password_hash if user is not None else None
    ok = password_matches(stored, password)
    return user if ok and user is not None and user.revoked_at is None else None
