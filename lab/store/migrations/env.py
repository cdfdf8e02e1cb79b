"""Alembic environment: migrate the connection handed over by `lab.store.migrations.upgrade`.

Without a handed-over connection it opens the store's own URL (CERTLAB_DATABASE_URL, else the
default SQLite file), which is how a new revision is written against a database at head:
    python -c "from alembic import command; from lab.store.migrations import alembic_config;
               command.revision(alembic_config(), 'what changed', autogenerate=True, rev_id='0002')"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from lab.store.models import Base

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite's ALTER TABLE is limited
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from lab.store.db import make_engine

    engine, _ = make_engine(context.get_x_argument(as_dictionary=True).get("url"))
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("certlab migrations run online only")
main()
