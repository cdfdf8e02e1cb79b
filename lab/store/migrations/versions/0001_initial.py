"""Initial schema: runs, benches, samples, test results, evidence, events, leases, queue.

Written out in full (not `create_all`) so that it stays what it was when later revisions change
the models. `events` gets triggers that refuse UPDATE and DELETE: the log is append-only.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lab.store.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _check(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("edition", sa.String(64), nullable=False),
        sa.Column("lab", sa.String(128)),
        sa.Column("inventory_hash", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operator", sa.String(256)),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.CheckConstraint(_check("status", ("pending", "running", "finished", "interrupted", "cancelled")),
                           name="ck_runs_status"),
    )
    op.create_table(
        "benches",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("lab", sa.String(128)),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fault_count", sa.Integer(), nullable=False),
        sa.Column("state_reason", sa.Text()),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_benches"),
        sa.CheckConstraint(_check("state", ("available", "leased", "quarantined")), name="ck_benches_state"),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("firmware", sa.String(64)),
        sa.Column("received_at", UtcDateTime()),
        sa.Column("condition", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
        sa.UniqueConstraint("model", "serial", name="uq_samples_model_serial"),
    )
    op.create_table(
        "test_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("bench", sa.String(128), nullable=False),
        sa.Column("sample_id", sa.Integer()),
        sa.Column("dut_serial", sa.String(128)),
        sa.Column("firmware", sa.String(64)),
        sa.Column("nodeid", sa.String(1024), nullable=False),
        sa.Column("test", sa.String(256)),
        sa.Column("test_case", sa.String(64)),
        sa.Column("provision", sa.String(64)),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("duration", sa.Double()),
        sa.Column("started_at", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_test_results"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_test_results_run_id_runs"),
        sa.ForeignKeyConstraint(["sample_id"], ["samples.id"], name="fk_test_results_sample_id_samples"),
        sa.UniqueConstraint("run_id", "bench", "nodeid", name="uq_test_results_run_bench_nodeid"),
        sa.CheckConstraint(_check("verdict", ("PASS", "FAIL", "NOT_APPLICABLE", "INCONCLUSIVE")),
                           name="ck_test_results_verdict"),
    )
    op.create_index("ix_test_results_run_id_bench", "test_results", ["run_id", "bench"])
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_evidence"),
        sa.ForeignKeyConstraint(["result_id"], ["test_results.id"], ondelete="CASCADE",
                                name="fk_evidence_result_id_test_results"),
    )
    op.create_index("ix_evidence_result_id", "evidence", ["result_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("bench", sa.String(128)),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_events_run_id_runs"),
    )
    op.create_index("ix_events_run_id", "events", ["run_id"])
    op.create_table(
        "leases",
        sa.Column("bench", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(256)),
        sa.Column("acquired_at", UtcDateTime()),
        sa.Column("heartbeat_at", UtcDateTime()),
        sa.Column("expires_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("bench", name="pk_leases"),
        sa.ForeignKeyConstraint(["bench"], ["benches.name"], name="fk_leases_bench_benches"),
    )
    op.create_table(
        "queued_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(256)),
        sa.Column("claimed_at", UtcDateTime()),
        sa.Column("bench", sa.String(128)),
        sa.Column("run_id", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_queued_runs"),
        sa.CheckConstraint(_check("state", ("pending", "claimed", "done", "failed", "cancelled")),
                           name="ck_queued_runs_state"),
    )
    op.create_index("ix_queued_runs_pick", "queued_runs", ["state", "model", "priority", "created_at"])
    _append_only_events()


def _append_only_events() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION certlab_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'events are append-only'; END $$
        """)
        op.execute("""
            CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
            FOR EACH ROW EXECUTE FUNCTION certlab_events_append_only()
        """)
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events
                BEGIN SELECT RAISE(ABORT, 'events are append-only'); END
            """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS certlab_events_append_only()")
    for table in ("queued_runs", "leases", "events", "evidence", "test_results", "samples", "benches", "runs"):
        op.drop_table(table)
