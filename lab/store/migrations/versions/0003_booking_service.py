"""The booking service: organisations, users (token hashes), products, slots, bookings, firmware,
chain of custody, report releases, reviews and the audit log.

Samples gain the booking they came with. `audit_log` and `custody_events` are append-only, like
`events`: database triggers refuse UPDATE and DELETE.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lab.store.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_log", "custody_events")


def _check(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _created() -> sa.Column:
    return sa.Column("created_at", UtcDateTime(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        _created(),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _created(),
        sa.Column("revoked_at", UtcDateTime()),
        sa.CheckConstraint(_check("role", ("manufacturer", "engineer", "certifier")), name="ck_users_role"),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("vendor", sa.String(256), nullable=False),
        _created(),
        sa.UniqueConstraint("org_id", "model", name="uq_products_org_id_model"),
    )
    op.create_table(
        "slots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.UniqueConstraint("model", "day", name="uq_slots_model_day"),
        sa.CheckConstraint("reserved >= 0 AND reserved <= capacity", name="ck_slots_reserved"),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("firmware_version", sa.String(64), nullable=False),
        sa.Column("edition", sa.String(8), nullable=False),
        sa.Column("suites", sa.JSON, nullable=False),
        sa.Column("ics", sa.Text, nullable=False),
        sa.Column("ixit", sa.Text, nullable=False),
        sa.Column("preferred_from", sa.String(10)),
        sa.Column("preferred_to", sa.String(10)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("slot_id", sa.Integer, sa.ForeignKey("slots.id")),
        sa.Column("run_id", sa.String(64)),
        sa.Column("note", sa.Text),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        _created(),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(_check("status", ("requested", "accepted", "running", "tested", "reported", "rejected",
                                             "cancelled")), name="ck_bookings_status"),
    )
    op.create_index("ix_bookings_org_id", "bookings", ["org_id"])
    op.create_table(
        "firmware",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), nullable=False),
        sa.Column("filename", sa.String(256), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("signature", sa.String(16), nullable=False),
        sa.Column("signature_detail", sa.Text),
        sa.Column("uploaded_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        _created(),
        sa.CheckConstraint(_check("signature", ("valid", "invalid", "unchecked")), name="ck_firmware_signature"),
    )
    op.create_table(
        "custody_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sample_id", sa.Integer, sa.ForeignKey("samples.id"), nullable=False),
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id")),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("by_user", sa.Integer, sa.ForeignKey("users.id")),
        sa.Column("at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "report_releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), nullable=False),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("released_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "org_id", name="uq_report_releases_run_id_org_id"),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), nullable=False),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("reviewer", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(_check("decision", ("accepted", "rejected")), name="ck_reviews_decision"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("user_name", sa.String(128)),
        sa.Column("role", sa.String(16)),
        sa.Column("org", sa.String(128)),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("booking_id", sa.Integer))
    for table in APPEND_ONLY:
        _append_only(table)


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION certlab_{table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{table} is append-only'; END $$
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION certlab_{table}_append_only()
        """)
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
            """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS certlab_{table}_append_only()")
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("booking_id")
    for table in ("audit_log", "reviews", "report_releases", "custody_events", "firmware", "bookings", "slots",
                  "products", "users", "organisations"):
        op.drop_table(table)
