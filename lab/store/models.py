"""The result store's tables, as SQLAlchemy 2 typed declarative models.

One schema for SQLite and PostgreSQL: only portable column types, timestamps always UTC-aware
(`UtcDateTime`), JSON for lists and payloads. The schema itself is created by the Alembic
migrations in `lab.store.migrations`, never by `metadata.create_all`, so that a database
created today can be upgraded tomorrow.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from lab.verdicts import CAUSES, ROLES, VERDICTS

RUN_STATES = ("pending", "running", "finished", "interrupted", "cancelled")
BENCH_STATES = ("available", "leased", "quarantined")
QUEUE_STATES = ("pending", "claimed", "done", "failed", "cancelled")
DISPATCH_STATES = ("queued", "running", "done", "superseded", "cancelled")

# Deterministic constraint names, so that later migrations can refer to them on both backends.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes: SQLite keeps no zone and PostgreSQL would
    otherwise read naive values in the session's zone, so lease expiry would drift."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store timestamps must be timezone-aware (use datetime.now(timezone.utc))")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    """One campaign: chosen suites on chosen benches for one booking."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(_one_of("status", RUN_STATES), name="status"),
                      Index("ix_runs_status", "status"))  # the bench board's running runs (0008)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    edition: Mapped[str] = mapped_column(String(64))
    lab: Mapped[str | None] = mapped_column(String(128))
    inventory_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    operator: Mapped[str | None] = mapped_column(String(256))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    results: Mapped[list[TestResult]] = relationship(back_populates="run", order_by="TestResult.id")


class Bench(Base):
    """A test station. `state` mirrors the lease for quick listing; the Lease row is the truth."""

    __tablename__ = "benches"
    __table_args__ = (CheckConstraint(_one_of("state", BENCH_STATES), name="state"),)

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    lab: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    capabilities: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(16), default="available")
    fault_count: Mapped[int] = mapped_column(Integer, default=0)
    state_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sample(Base):
    """A physical DUT unit; its history (chain of custody) is the results and events naming it."""

    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("model", "serial", name="uq_samples_model_serial"),
                      Index("ix_samples_booking_id", "booking_id"))  # a booking's samples (0008)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    firmware: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime | None]
    condition: Mapped[str | None] = mapped_column(Text)
    booking_id: Mapped[int | None] = mapped_column(Integer)  # the booking it came with (lab.api)


class TestResult(Base):
    """One verdict per (run, bench, test node): the unique key is what makes resume exactly-once."""

    __tablename__ = "test_results"
    __test__ = False  # not a pytest class
    __table_args__ = (
        UniqueConstraint("run_id", "bench", "nodeid", name="uq_test_results_run_bench_nodeid"),
        CheckConstraint(_one_of("verdict", VERDICTS), name="verdict"),
        Index("ix_test_results_run_id_bench", "run_id", "bench"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    bench: Mapped[str] = mapped_column(String(128))  # a name, not a key: history outlives benches
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id"))
    dut_serial: Mapped[str | None] = mapped_column(String(128))
    firmware: Mapped[str | None] = mapped_column(String(64))  # at test time: updates change it
    nodeid: Mapped[str] = mapped_column(String(1024))
    test: Mapped[str | None] = mapped_column(String(256))
    test_case: Mapped[str | None] = mapped_column(String(64))
    provision: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    final: Mapped[bool] = mapped_column(default=True)
    executed_on: Mapped[str | None] = mapped_column(String(128))  # another bench took over the slot
    cause: Mapped[str | None] = mapped_column(String(32))  # why INCONCLUSIVE: one of CAUSES
    duration: Mapped[float | None] = mapped_column(Double)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    run: Mapped[Run] = relationship(back_populates="results")
    evidence_files: Mapped[list[Evidence]] = relationship(
        back_populates="result", order_by="Evidence.id", cascade="all, delete-orphan")


class Evidence(Base):
    """A file attached to a result, with its hash as it was when recorded."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("test_results.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)

    result: Mapped[TestResult] = relationship(back_populates="evidence_files")


class Event(Base):
    """Append-only log (database triggers refuse UPDATE and DELETE): what happened, when."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"))
    bench: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """A bench reservation. One row per bench; free when `holder` is NULL or `expires_at` passed."""

    __tablename__ = "leases"

    bench: Mapped[str] = mapped_column(ForeignKey("benches.name"), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(256))
    acquired_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class Dispatch(Base):
    """One attempt at a work item sent to a lab host; its id is the attempt's fencing token.

    A lab host claims the token (queued -> running) before it touches the bench, and every
    result its tests write is checked against it: a message the broker delivers again after the
    orchestrator gave the work to another host finds its token superseded and changes nothing.
    """

    __tablename__ = "dispatches"
    __table_args__ = (
        CheckConstraint(_one_of("state", DISPATCH_STATES), name="state"),
        Index("ix_dispatches_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    item_key: Mapped[str] = mapped_column(String(512))
    slot: Mapped[str] = mapped_column(String(128))
    bench: Mapped[str] = mapped_column(String(128))
    labhost: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    task_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")  # why it ended as it did
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class QueuedRun(Base):
    """A pending run waiting for a bench of its DUT model with the capabilities it needs."""

    __tablename__ = "queued_runs"
    __table_args__ = (
        CheckConstraint(_one_of("state", QUEUE_STATES), name="state"),
        Index("ix_queued_runs_pick", "state", "model", "priority", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first
    model: Mapped[str] = mapped_column(String(128))
    capabilities: Mapped[list[Any]] = mapped_column(default=list)  # required, all of them
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(256))
    claimed_at: Mapped[datetime | None]
    bench: Mapped[str | None] = mapped_column(String(128))
    run_id: Mapped[str | None] = mapped_column(String(64))


# --- the booking service (lab.api): who may do what, and what manufacturers booked ------------

BOOKING_STATES = ("requested", "accepted", "running", "tested", "reported", "rejected", "cancelled")
REVIEW_DECISIONS = ("accepted", "rejected")
SIGNATURE_STATES = ("valid", "invalid", "unchecked")


class Organisation(Base):
    """A tenant: a manufacturer, the lab itself, or a certification body."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person or system holding one API token; only the token's SHA-256 is kept."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    password_hash: Mapped[str | None] = mapped_column(String(256))  # scrypt, for the web login (`certlab users passwd`)

    org: Mapped[Organisation] = relationship(lazy="joined")


class WebSession(Base):
    """A browser's login: only the cookie value's SHA-256 is kept, so a copy of the store opens no session."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie value
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))  # the session's one CSRF token
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)  # absolute end (12 h after login)
    notice: Mapped[str | None] = mapped_column(Text)  # shown once, on the next page


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("org_id", "model", name="uq_products_org_id_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    model: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    vendor: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Slot(Base):
    """One day of testing for a DUT model; capacity = the inventory's benches for that model."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("model", "day", name="uq_slots_model_day"),
        CheckConstraint("reserved >= 0 AND reserved <= capacity", name="reserved"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    day: Mapped[str] = mapped_column(String(10))  # ISO date: portable and ordered
    capacity: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(_one_of("status", BOOKING_STATES), name="status"),
        Index("ix_bookings_org_id", "org_id"),
        Index("ix_bookings_run_id", "run_id"),  # a run's booking (migration 0006)
        Index("ix_bookings_status", "status"),  # the bookings lists: counts and pages from indexes (0007)
        Index("ix_bookings_org_id_status", "org_id", "status"),
        Index("ix_bookings_updated_at_run_id", "updated_at", "run_id"),  # the reports lists (0008)
        Index("ix_bookings_org_id_status_updated_at", "org_id", "status", "updated_at", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    firmware_version: Mapped[str] = mapped_column(String(64))
    edition: Mapped[str] = mapped_column(String(8))
    suites: Mapped[list[Any]] = mapped_column(default=list)
    ics: Mapped[str] = mapped_column(Text)  # the YAML as uploaded, validated against the edition
    ixit: Mapped[str] = mapped_column(Text)
    preferred_from: Mapped[str | None] = mapped_column(String(10))
    preferred_to: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default="requested")
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("slots.id"))
    run_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    product: Mapped[Product] = relationship(lazy="joined")
    slot: Mapped[Slot | None] = relationship(lazy="joined")


class Firmware(Base):
    """An uploaded image, stored by content hash; the signature is checked against the IXIT's key."""

    __tablename__ = "firmware"
    __table_args__ = (CheckConstraint(_one_of("signature", SIGNATURE_STATES), name="signature"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"))
    filename: Mapped[str] = mapped_column(String(256))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(16), default="unchecked")
    signature_detail: Mapped[str | None] = mapped_column(Text)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustodyEvent(Base):
    """Chain of custody of a sample: received, on a bench, tested, returned (append-only)."""

    __tablename__ = "custody_events"
    __table_args__ = (Index("ix_custody_events_sample_id", "sample_id"),)  # a sample's custody (0008)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))
    kind: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    by_user: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportRelease(Base):
    """A run's approved report made readable to one certification body."""

    __tablename__ = "report_releases"
    __table_args__ = (UniqueConstraint("run_id", "org_id", name="uq_report_releases_run_id_org_id"),
                      Index("ix_report_releases_org_id_at", "org_id", "at"),  # a certifier's list (0006)
                      Index("ix_report_releases_booking_id", "booking_id"))  # a booking's releases (0008)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    released_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (CheckConstraint(_one_of("decision", REVIEW_DECISIONS), name="decision"),
                      Index("ix_reviews_run_id", "run_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    reviewer: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # provision id -> the certifier's comment where it disagrees with the report (migration 0006)
    provision_comments: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AuditEntry(Base):
    """Every state-changing API call: who, what, when (append-only, like `events`)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer)
    user_name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(16))
    org: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")


# --- product records (lab.records, lab.actions.records): the lab's record of a certified product ------


class ProductRecord(Base):
    """Which product a model's record is about and where its re-tests' inputs are kept; the record
    itself is its chain of revisions (`RecordRevision`)."""

    __tablename__ = "product_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    baseline_run_id: Mapped[str] = mapped_column(String(64))
    inputs_dir: Mapped[str] = mapped_column(Text)  # the baseline run's ICS, IXIT, assessments for re-tests
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecordRevision(Base):
    """One signed revision of a model's record (append-only: database triggers refuse UPDATE and DELETE).
    `document` is the revision's JSON as `lab.records.chain` made it; the other columns are read from it."""

    __tablename__ = "record_revisions"
    __table_args__ = (UniqueConstraint("model", "seq", name="uq_record_revisions_model_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the feed's order (`after=id`)
    model: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
