"""A certifier's comment per provision on a review (where it disagrees with the report), and the
indexes the reports pages read by: releases per organisation, reviews per run, bookings by run.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviews", sa.Column("provision_comments", sa.JSON(), nullable=True))
    op.create_index("ix_reviews_run_id", "reviews", ["run_id"])
    op.create_index("ix_report_releases_org_id_at", "report_releases", ["org_id", "at"])
    op.create_index("ix_bookings_run_id", "bookings", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_bookings_run_id", "bookings")
    op.drop_index("ix_report_releases_org_id_at", "report_releases")
    op.drop_index("ix_reviews_run_id", "reviews")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("provision_comments")
