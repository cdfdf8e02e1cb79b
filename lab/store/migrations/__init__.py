"""Run the store's Alembic migrations from code, from a source tree or an installed package.

The script location is this folder, found through `__file__`, so no alembic.ini is needed. The
upgrade runs in one transaction holding the database's write lock (SQLite `BEGIN IMMEDIATE`,
a PostgreSQL advisory lock), so two orchestrators starting at once migrate once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

if TYPE_CHECKING:
    from lab.store.db import Store

HERE = Path(__file__).resolve().parent
PG_LOCK_KEY = 0x0CE87_1AB  # any constant: the advisory lock that serialises migrations


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(store: Store, revision: str = "head", *, lock_wait_s: float | None = None) -> None:
    """Bring the schema to `revision`; a no-op when it is already there. `lock_wait_s`: how long
    SQLite's write lock is waited for (default: as long as any write transaction waits)."""
    cfg = alembic_config()
    engine = store.engine if lock_wait_s is None else store.engine.execution_options(certlab_write_wait_s=lock_wait_s)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, revision)
        except CommandError as exc:  # e.g. a database written by a newer certlab
            from lab.store.db import StoreError  # (db opens stores through this module)

            raise StoreError(f"the result store {store.url} is at a schema revision this certlab does not know "
                             f"({exc}); fix: upgrade certlab, or use another database (CERTLAB_DATA_DIR / "
                             f"CERTLAB_DATABASE_URL)") from None
