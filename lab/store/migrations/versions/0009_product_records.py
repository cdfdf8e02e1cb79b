"""Product records: per certified model, which product it is and where its re-tests' inputs are
kept (`product_records`), and its chain of signed revisions (`record_revisions`), append-only like
`events`: triggers refuse UPDATE and DELETE, so a revision is never rewritten in place.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lab.store.models import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_records",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id", name="fk_product_records_org_id_organisations"),
                  nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", name="fk_product_records_product_id_products"),
                  nullable=False),
        sa.Column("baseline_run_id", sa.String(64), nullable=False),
        sa.Column("inputs_dir", sa.Text, nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("model", name="uq_product_records_model"),
    )
    op.create_table(
        "record_revisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.UniqueConstraint("model", "seq", name="uq_record_revisions_model_seq"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION certlab_record_revisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'record revisions are append-only'; END $$
        """)
        op.execute("""
            CREATE TRIGGER record_revisions_append_only BEFORE UPDATE OR DELETE ON record_revisions
            FOR EACH ROW EXECUTE FUNCTION certlab_record_revisions_append_only()
        """)
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER record_revisions_no_{action.lower()} BEFORE {action} ON record_revisions
                BEGIN SELECT RAISE(ABORT, 'record revisions are append-only'); END
            """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS record_revisions_append_only ON record_revisions")
        op.execute("DROP FUNCTION IF EXISTS certlab_record_revisions_append_only()")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS record_revisions_no_{action}")
    op.drop_table("record_revisions")
    op.drop_table("product_records")
