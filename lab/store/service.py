"""The booking service's records of what happens after a booking is accepted: uploaded firmware,
the run that tests it, the report's releases to certification bodies, and their reviews.

Plain store functions (keyword-only, a Store or a Session, see `unit`), no HTTP: the API routes
decide who may call them, these only keep the rows consistent. A booking moves
accepted -> running (claimed before its process starts, so two starts cannot both win)
-> tested -> reported.
"""

from __future__ import annotations

from sqlalchemy import select, update

from lab.store.bookings import hold_inputs
from lab.store.models import (
    REVIEW_DECISIONS,
    SIGNATURE_STATES,
    Booking,
    Firmware,
    Organisation,
    ReportRelease,
    Review,
    User,
    utcnow,
)
from lab.store.unit import Target, reading, unit

# --- firmware ---------------------------------------------------------------------------------


def add_firmware(target: Target, *, org_id: int, booking_id: int, filename: str, sha256: str, size: int,
                 version: str | None, signature: str, signature_detail: str | None, uploaded_by: int) -> Firmware:
    """Record an image already stored under its hash (the file itself is the caller's); InputsFrozen once
    the booking's run has started or it is closed."""
    if signature not in SIGNATURE_STATES:
        raise ValueError(f"signature must be one of {SIGNATURE_STATES}, not {signature!r}")
    with unit(target) as s:
        hold_inputs(s, booking_id=booking_id)
        row = Firmware(org_id=org_id, booking_id=booking_id, filename=filename[:256], sha256=sha256, size=size,
                       version=version, signature=signature, signature_detail=signature_detail,
                       uploaded_by=uploaded_by, created_at=utcnow())
        s.add(row)
        s.flush()
        return row


def firmware_with_hash(target: Target, *, booking_id: int, sha256: str) -> Firmware | None:
    """The booking's record of this exact content, if it was uploaded before (uploads are idempotent)."""
    with reading(target) as s:
        return s.scalars(select(Firmware).where(Firmware.booking_id == booking_id, Firmware.sha256 == sha256)
                         .order_by(Firmware.id)).first()


def booking_firmware(target: Target, *, booking_id: int) -> list[Firmware]:
    with reading(target) as s:
        return list(s.scalars(select(Firmware).where(Firmware.booking_id == booking_id).order_by(Firmware.id)))


def get_firmware(target: Target, *, firmware_id: int) -> Firmware | None:
    with reading(target) as s:
        return s.get(Firmware, firmware_id)


# --- the booking's run ------------------------------------------------------------------------


def claim_for_run(target: Target, *, booking_id: int) -> bool:
    """Move an accepted booking to running before its process starts; False if it was not accepted.

    One conditional UPDATE, so of two engineers starting the same booking exactly one wins.
    """
    with unit(target) as s:
        done = s.execute(update(Booking).where(Booking.id == booking_id, Booking.status == "accepted")
                         .values(status="running", updated_at=utcnow()))
        return done.rowcount == 1


def attach_run(target: Target, *, booking_id: int, run_id: str) -> None:
    """The run the claimed booking is being tested in."""
    with unit(target) as s:
        s.execute(update(Booking).where(Booking.id == booking_id)
                  .values(run_id=run_id, status="running", updated_at=utcnow()))


def unclaim(target: Target, *, booking_id: int) -> None:
    """The run did not start (or ended without verdicts): the booking may be started again."""
    with unit(target) as s:
        s.execute(update(Booking).where(Booking.id == booking_id, Booking.status == "running")
                  .values(status="accepted", updated_at=utcnow()))


def finish_run(target: Target, *, booking_id: int, run_id: str, tested: bool) -> None:
    """The run's process ended: tested if it left verdicts, else back to accepted (to start again).

    Only while the booking is still running that run: a late waiter must not undo a newer state.
    """
    with unit(target) as s:
        s.execute(update(Booking).where(Booking.id == booking_id, Booking.run_id == run_id,
                                        Booking.status == "running")
                  .values(status="tested" if tested else "accepted", updated_at=utcnow()))


def mark_reported(target: Target, *, booking_id: int, run_id: str) -> None:
    """The run's report is approved: the booking's testing is done."""
    with unit(target) as s:
        s.execute(update(Booking).where(Booking.id == booking_id, Booking.run_id == run_id,
                                        Booking.status.in_(("running", "tested")))
                  .values(status="reported", updated_at=utcnow()))


# --- releases and reviews ---------------------------------------------------------------------


def organisation_named(target: Target, *, name: str) -> Organisation | None:
    with reading(target) as s:
        return s.scalars(select(Organisation).where(Organisation.name == name)).first()


def has_member(target: Target, *, org_id: int, role: str) -> bool:
    """Whether the organisation has a live user with this role (a release goes to certifiers only)."""
    with reading(target) as s:
        return s.scalars(select(User.id).where(User.org_id == org_id, User.role == role,
                                               User.revoked_at.is_(None))).first() is not None


def release_report(target: Target, *, run_id: str, booking_id: int, org_id: int, released_by: int) -> ReportRelease:
    """Make the run's report readable to one organisation; releasing twice keeps the first release."""
    with unit(target) as s:
        row = s.scalars(select(ReportRelease).where(ReportRelease.run_id == run_id,
                                                    ReportRelease.org_id == org_id)).first()
        if row is None:
            row = ReportRelease(run_id=run_id, booking_id=booking_id, org_id=org_id, released_by=released_by,
                                at=utcnow())
            s.add(row)
            s.flush()
        return row


def releases(target: Target, *, run_id: str) -> list[ReportRelease]:
    with reading(target) as s:
        return list(s.scalars(select(ReportRelease).where(ReportRelease.run_id == run_id).order_by(ReportRelease.id)))


def released_to(target: Target, *, run_id: str, org_id: int) -> bool:
    with reading(target) as s:
        return s.scalars(select(ReportRelease.id).where(ReportRelease.run_id == run_id,
                                                        ReportRelease.org_id == org_id)).first() is not None


def add_review(target: Target, *, run_id: str, booking_id: int, org_id: int, reviewer: int, decision: str,
               comment: str = "", provision_comments: dict[str, str] | None = None) -> Review:
    """A certifier's decision on a released report; later reviews add to, never replace, earlier ones."""
    if decision not in REVIEW_DECISIONS:
        raise ValueError(f"decision must be one of {REVIEW_DECISIONS}, not {decision!r}")
    with unit(target) as s:
        row = Review(run_id=run_id, booking_id=booking_id, org_id=org_id, reviewer=reviewer, decision=decision,
                     comment=comment, at=utcnow(), provision_comments=provision_comments or None)
        s.add(row)
        s.flush()
        return row


def reviews(target: Target, *, run_id: str, org_id: int | None = None) -> list[tuple[Review, str, str]]:
    """The run's reviews with reviewer and organisation names; only one organisation's if given."""
    with reading(target) as s:
        query = (select(Review, User.name, Organisation.name).join(User, User.id == Review.reviewer)
                 .join(Organisation, Organisation.id == Review.org_id).where(Review.run_id == run_id)
                 .order_by(Review.id))
        if org_id is not None:
            query = query.where(Review.org_id == org_id)
        return [(r, user, org) for r, user, org in s.execute(query).all()]
