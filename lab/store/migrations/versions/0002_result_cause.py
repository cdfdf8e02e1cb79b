"""Results say where they ran and why they are INCONCLUSIVE.

`executed_on` is the bench that actually ran the test when another bench took over the slot's
work (failover after a failed health check, retry after a lab fault); `cause` classifies an
INCONCLUSIVE verdict (lab-fault, sample-unusable, test-error, cancelled, not-run) so that the
orchestrator decides retries from data rather than by parsing reasons.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("test_results") as batch:
        batch.add_column(sa.Column("executed_on", sa.String(128)))
        batch.add_column(sa.Column("cause", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("test_results") as batch:
        batch.drop_column("cause")
        batch.drop_column("executed_on")
