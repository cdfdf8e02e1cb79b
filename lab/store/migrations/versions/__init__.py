"""Alembic revisions of the result store (loaded by Alembic, not imported)."""
