"""Where the store lives and how to connect to it.

`CERTLAB_DATABASE_URL` names a PostgreSQL (or SQLite) database; without it the store is a SQLite
file in `$CERTLAB_DATA_DIR` (default `~/.local/share/certlab/certlab.db`). Nothing connects at
import time: every `open_store()` builds its own engine, so tests, the orchestrator and the API
each hold their own.

SQLite is tuned for several processes writing at once: WAL (readers never block the writer),
foreign keys on, a busy timeout, and every transaction begun with `BEGIN IMMEDIATE`, so that a
read-then-write transaction waits for the write lock up front instead of failing half-way;
`Store.reading()` is the exception, a plain BEGIN for transactions that only read.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lab.errors import CertlabError
from lab.ownerfiles import private_dir, touch_private

ENV_URL = "CERTLAB_DATABASE_URL"
ENV_DATA_DIR = "CERTLAB_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.local/share/certlab")
SQLITE_BUSY_MS = 15_000
WRITE_LOCK_WAIT_S = 120.0  # a write transaction waits this long for SQLite's lock (begin_immediate)
# Opening a store migrates it under the write lock; on a busy lab host another certlab process
# can hold that lock (or SQLite can refuse at once where waiting could deadlock) beyond one busy
# timeout, so start-up retries with backoff until this many seconds have passed, then says so.
STARTUP_WAIT_S = 120.0
T = TypeVar("T")
PG_CONNECT_TIMEOUT_S = 5
URL_FIX = "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"


class StoreError(CertlabError):
    """The database URL is wrong or the database cannot be used. One line, no password."""


class StoreUnavailable(StoreError):
    """The database did not answer (server down, file not writable, locked too long)."""


@dataclass(frozen=True)
class Store:
    """An open result store: one engine and its session factory. Close it when done."""

    engine: Engine
    sessions: sessionmaker[Session]
    url: str  # for messages: password masked

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction: on SQLite a plain BEGIN, so readers never queue for the write
        lock (WAL lets them read beside the writer); writing in it is an error."""
        with Session(self.engine.execution_options(certlab_read=True), expire_on_commit=False) as session, \
                session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mask_url(text: str) -> str:
    """Hide a password in anything that looks like a URL (`user:secret@` → `user:***@`)."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def one_line(text: str, secret: str | None = None) -> str:
    """First line of a driver message, with the password and URL passwords removed."""
    first = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    if secret:
        first = first.replace(secret, "***")
    return mask_url(first)[:300]


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """certlab's own data (the SQLite store, Allure history): $CERTLAB_DATA_DIR or ~/.local/share/certlab."""
    env = os.environ if env is None else env
    return Path(env.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR).expanduser()


def default_sqlite_path(env: Mapping[str, str] | None = None) -> Path:
    return default_data_dir(env) / "certlab.db"


def resolve_url(url: str | None = None, env: Mapping[str, str] | None = None) -> tuple[URL, str]:
    """The URL to use and where it came from (for messages): argument, environment or default."""
    env = os.environ if env is None else env
    if url:
        raw, source = url, "database URL"
    elif env.get(ENV_URL, "").strip():
        raw, source = env[ENV_URL].strip(), ENV_URL
    else:
        return URL.create("sqlite", database=str(default_sqlite_path(env))), ENV_DATA_DIR
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError):
        raise StoreError(f"{source}: cannot parse {mask_url(raw)!r}; fix: {URL_FIX}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql")
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"{source}: unsupported database {backend!r} in "
                         f"{parsed.render_as_string(hide_password=True)}; fix: {URL_FIX}")
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg2", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver certlab installs
    if backend == "postgresql" and not parsed.database:
        raise StoreError(f"{source}: no database name in "
                         f"{parsed.render_as_string(hide_password=True)}; fix: {URL_FIX}")
    return parsed, source


def _sqlite_engine(url: URL, source: str) -> Engine:
    db = url.database
    if db and db != ":memory:" and not db.startswith("file:"):
        path = Path(db).expanduser()
        try:
            private_dir(path.parent)
        except OSError as exc:
            raise StoreError(f"{source}: cannot create the data directory {path.parent}: "
                             f"{exc.strerror}; fix: set {ENV_DATA_DIR} to a writable folder") from None
        try:
            touch_private(path)  # owner-only before SQLite makes it: its -wal and -shm take the file's mode
        except OSError as exc:
            raise StoreError(f"{source}: cannot create the store {path}: {exc.strerror}; "
                             f"fix: set {ENV_DATA_DIR} to a writable folder") from None
        url = url.set(database=str(path))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cur.execute("PRAGMA journal_mode = WAL")  # once per database file: WAL persists
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, no corruption
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("certlab_read"):
            conn.exec_driver_sql("BEGIN")
        else:  # a start-up's migration waits only as long as the start-up may (open_store)
            begin_immediate(conn, wait_s=conn.get_execution_options().get("certlab_write_wait_s", WRITE_LOCK_WAIT_S))

    return engine


def make_engine(url: str | None = None, env: Mapping[str, str] | None = None) -> tuple[Engine, str]:
    """A new engine for `url` (or the environment's), and the masked URL for messages."""
    parsed, source = resolve_url(url, env)
    shown = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed, source)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20,
                                   connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"{source}: no driver for {shown} ({one_line(str(exc))}); "
                         f"fix: use postgresql+psycopg:// and install certlab's dependencies") from None
    except ArgumentError as exc:
        raise StoreError(f"{source}: bad database URL {shown}: {one_line(str(exc), parsed.password)}; "
                         f"fix: {URL_FIX}") from None
    return engine, shown


def unavailable(exc: BaseException, store_url: str, password: str | None = None) -> StoreUnavailable:
    """Turn a driver error into one clear line (never the password)."""
    orig = getattr(exc, "orig", None) or exc
    fix = (f"check that file, or set {ENV_DATA_DIR} or {ENV_URL}" if store_url.startswith("sqlite")
           else f"start the database server or correct {ENV_URL}")
    return StoreUnavailable(f"database {store_url} is unavailable: {one_line(str(orig), password)}; fix: {fix}")


def locked(exc: BaseException) -> bool:
    """SQLite's "database is locked/busy": another process holds the write lock; try again later."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "database is locked" in text or "database is busy" in text


def retry_while_locked(action: Callable[[], T], *, wait_s: float = STARTUP_WAIT_S, max_tries: int = 60) -> T:
    """Run one store action, again with backoff while SQLite says another process holds its write
    lock. A busy lab host (sixteen workers planning at once on two cores, orchestrators starting
    together) can queue past one busy timeout; waiting, bounded in time and count, keeps the plan
    and the verdicts instead of losing them. Any other error, or the lock held past `wait_s`, is
    raised as it came."""
    deadline = time.monotonic() + wait_s
    for attempt in range(1, max_tries + 1):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - only "locked" is retried
            left = deadline - time.monotonic()
            if not locked(exc) or left <= 0 or attempt == max_tries:
                raise
            time.sleep(min(left, min(5.0, 0.2 * 2 ** min(attempt, 5)) * random.uniform(0.5, 1.0)))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def begin_immediate(conn: Any, *, wait_s: float) -> None:
    """Take SQLite's write lock, waiting past one busy timeout while others hold it (bounded).

    Thirty runs side by side on two busy cores (the detection matrix, a lab's re-tests) keep the
    lock busy long enough that one writer can lose every turn of SQLite's busy handler for 15 s.
    Nothing has happened in the transaction yet, so taking the lock again is safe; past `wait_s`
    the "locked" error is raised as it came.
    """
    deadline = time.monotonic() + wait_s
    for attempt in range(1, 10_000):  # the deadline bounds it first
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except DBAPIError as exc:
            if not locked(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(random.uniform(0.05, 0.5) * min(attempt, 4))


def _start(store: Store, migrate: bool, wait_s: float) -> None:
    """Migrate (or just connect), waiting while SQLite says locked, for at most `wait_s`."""
    def start() -> None:
        if migrate:
            from lab.store.migrations import upgrade

            upgrade(store, lock_wait_s=wait_s)
        else:
            with store.engine.connect():
                pass

    try:
        retry_while_locked(start, wait_s=wait_s, max_tries=1000)  # the deadline bounds it first
    except OperationalError as exc:
        if locked(exc):
            raise StoreUnavailable(
                f"database {store.url} stayed locked by another process for {wait_s:g} s while certlab "
                f"started; fix: let the other certlab finish, or look for a process holding the file "
                f"(fuser on it)") from None
        raise


def open_store(url: str | None = None, *, migrate: bool = True,
               env: Mapping[str, str] | None = None, startup_wait_s: float = STARTUP_WAIT_S) -> Store:
    """Open the store and (by default) upgrade its schema to the newest migration.

    Several orchestrators starting together on one SQLite file wait their turn (see
    STARTUP_WAIT_S) instead of failing."""
    engine, shown = make_engine(url, env)
    store = Store(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False), url=shown)
    try:
        _start(store, migrate, startup_wait_s)
    except DBAPIError as exc:
        engine.dispose()
        raise unavailable(exc, shown, engine.url.password) from None
    except BaseException:
        engine.dispose()
        raise
    return store
