"""Dispatches: each attempt at a work item sent to a lab host, its id the attempt's fencing token.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lab.store.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATES = ("queued", "running", "done", "superseded", "cancelled")


def upgrade() -> None:
    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", name="fk_dispatches_run_id_runs"), nullable=False),
        sa.Column("item_key", sa.String(512), nullable=False),
        sa.Column("slot", sa.String(128), nullable=False),
        sa.Column("bench", sa.String(128), nullable=False),
        sa.Column("labhost", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("task_id", sa.String(64)),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_at", UtcDateTime()),
        sa.Column("ended_at", UtcDateTime()),
        sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in STATES)})", name="ck_dispatches_state"),
    )
    op.create_index("ix_dispatches_run_id", "dispatches", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_dispatches_run_id", "dispatches")
    op.drop_table("dispatches")
