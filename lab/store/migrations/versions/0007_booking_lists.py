"""Indexes the bookings lists read by: counts per state and a page of ids come from them alone, never
from the table rows (whose ICS and IXIT, tens of kB each, sit before the status in every row).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_bookings_status", "bookings", ["status"])
    op.create_index("ix_bookings_org_id_status", "bookings", ["org_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_bookings_org_id_status", "bookings")
    op.drop_index("ix_bookings_status", "bookings")
