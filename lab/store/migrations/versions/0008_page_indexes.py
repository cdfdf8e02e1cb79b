"""Indexes the web pages read by, found with bench/web.py (10,000 runs, 1,000,000 results):

- reports lists (engineer: newest bookings with a run; manufacturer: its reported bookings): the
  order and the run filter come from an index, so a page reads 50 rows, not every booking (whose
  ICS and IXIT, tens of kB, sit before `updated_at` in each row: 1.0 s on SQLite, now ~1 ms);
- a booking page's samples, their custody and its releases by booking or sample, not a scan;
- the bench board's running runs by status, not a scan of every run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_bookings_updated_at_run_id", "bookings", ["updated_at", "run_id"]),
    ("ix_bookings_org_id_status_updated_at", "bookings", ["org_id", "status", "updated_at", "run_id"]),
    ("ix_samples_booking_id", "samples", ["booking_id"]),
    ("ix_custody_events_sample_id", "custody_events", ["sample_id"]),
    ("ix_report_releases_booking_id", "report_releases", ["booking_id"]),
    ("ix_runs_status", "runs", ["status"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table)
