"""The record keeper: each product record's queued re-test followed to its verdict delta.

One round (`settle_retests`; one thread per app, `record_keeper`; one process at a time by a
non-blocking flock in the data folder) looks at every re-test still queued or running: running once
the queue claims it; once done, the run gets a booking of its own (made by the lab on the
manufacturer's behalf, so its report is read by the rules of every report), its report is made and
approved by the re-test signatory, and the verdict delta against the certified baseline goes into
the record as a new revision (lab/actions/records.py keeps the chain). A failed entry, a run
without verdicts or a malformed report make the re-test failed, verdict INCONCLUSIVE with the
reason, never PASS. A release that turns a provision from PASS to FAIL is flagged: the audit log
and the lab's webhook (lab/records/notify.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lab import resources
from lab.actions import reports as report_actions
from lab.actions.context import Services
from lab.actions.errors import ActionError, Conflict
from lab.actions.periodic import Periodic
from lab.actions.records import INDEX_LIMIT, KEEPER, RECORDS_DIR, Change, LabCaller, append_revision, now, \
    record_path, stamp
from lab.api.audit import record as audit
from lab.errors import CertlabError
from lab.orchestrator.rundir import option_value
from lab.ownerfiles import private_dir
from lab.records import record as doc
from lab.records.delta import provision_verdicts, verdict_delta
from lab.records.notify import post_json
from lab.reports.conformance import JSON_FILE
from lab.reports.profile import load_profile
from lab.store import records as store
from lab.store.bookings import booking_of_lab_run
from lab.store.models import Event, QueuedRun, User
from lab.store.service import mark_reported
from lab.store.unit import reading

KEEPER_LOCK = ".keeper.lock"
RETEST_SIGNATORY_ROLE = "re-test approval (automatic)"  # when the lab profile lists no signatories



@contextlib.contextmanager
def keeper_turn(data_dir: Path) -> Iterator[bool]:
    """True for the one process whose turn it is (a non-blocking flock in the data dir), else False."""
    folder = private_dir(Path(data_dir) / RECORDS_DIR)
    fd = os.open(folder / KEEPER_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _keeper_audit(svc: Services, path: str, detail: str, status: int = 200) -> None:
    audit(svc.store, caller=LabCaller(), method="EVENT", path=path, status=status, detail=detail[:2000])


def _queue_row(svc: Services, queued_id: int | None) -> QueuedRun | None:
    if queued_id is None:
        return None
    with reading(svc.store) as s:
        return s.get(QueuedRun, queued_id)


def _queue_error(svc: Services, queued_id: int) -> str | None:
    with reading(svc.store) as s:
        message = s.scalar(select(Event.message).where(Event.message.like(f"queued run {queued_id}: %"))
                           .order_by(Event.id.desc()).limit(1))
    return message.split(": ", 1)[1] if message else None


def retest_signatory(svc: Services) -> tuple[str, str] | None:
    """(name, role) approving re-test reports: CERTLAB_RETEST_SIGNATORY (its role from the lab
    profile), else the profile's first signatory; None when nobody is configured."""
    args = report_actions.profile_args(svc)
    people = []
    if args:
        try:
            people = [(p.name, p.role) for p in load_profile(args[1]).signatories]
        except CertlabError:
            people = []
    wanted = svc.settings.retest_signatory
    if wanted:
        named = next(((n, r) for n, r in people if n.casefold() == wanted.strip().casefold()), None)
        return named or (wanted.strip(), RETEST_SIGNATORY_ROLE)
    return people[0] if people else None


def _report(svc: Services, run_dir: Path) -> tuple[str | None, bool]:
    """Make and approve the re-test's report as the lab does by hand: (why it is not approved or None,
    whether the keeper approved it, as the re-test signatory)."""
    if not (run_dir / JSON_FILE).is_file():
        report_actions.certlab_report(svc, run_dir, str(run_dir.resolve()), *report_actions.profile_args(svc))
    if report_actions.is_approved(run_dir):
        return None, False
    signatory = retest_signatory(svc)
    if signatory is None:
        return "the report is not approved: no signatory for re-tests (set CERTLAB_RETEST_SIGNATORY)", False
    try:
        report_actions.certlab_report(svc, run_dir, "approve", str(run_dir.resolve()), "--by", signatory[0],
                                      "--role", signatory[1], *report_actions.profile_args(svc))
    except ActionError as exc:
        return f"the report is not approved: {exc}", False
    return None, True


def _option_text(options: list[str], name: str) -> str:
    """The text of the file option `name` of a queued run names (a record's input copy); "" if none."""
    path = option_value(options, name)
    if path is None:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""


def _suite_names(suites: list[str]) -> list[str]:
    """A run's suite paths as a booking names them (en303645); any other path as given."""
    named = {resources.resolve_suite(path).resolve(): name for name, path in resources.NAMED_SUITES.items()}
    return [named.get(resources.resolve_suite(s).resolve(), s) for s in suites]


def _retest_booker(svc: Services, row: QueuedRun, org_id: int) -> int | None:
    """Whom the re-test's booking names as its author: who registered the release (or queued its
    re-test again), from the queue payload; for an entry queued without one, the record's
    organisation's first user; None if there is nobody."""
    wanted = (row.payload or {}).get("requested_by_user_id")
    with reading(svc.store) as s:
        if isinstance(wanted, int) and s.get(User, wanted) is not None:
            return wanted
        return s.scalar(select(User.id).where(User.org_id == org_id).order_by(User.id).limit(1))


def _retest_booking(svc: Services, model: str, version: str, row: QueuedRun) -> int | None:
    """The re-test run's booking, made by the lab on the manufacturer's behalf (one per run id, found
    again by a keeper that stopped half-way), so its report is read by the rules of every report:
    engineers, the product's manufacturer once approved, certifiers once released to them."""
    kept = store.product_record(svc.store, model)
    created_by = _retest_booker(svc, row, kept.org_id) if kept is not None else None
    if kept is None or created_by is None or not row.run_id:
        return None
    payload = row.payload or {}
    options = [str(o) for o in payload.get("options") or []]
    booking, made = booking_of_lab_run(
        svc.store, run_id=row.run_id, org_id=kept.org_id, product_id=kept.product_id, created_by=created_by,
        firmware_version=version, edition=str(payload.get("edition") or "v2"),
        suites=_suite_names([str(s) for s in payload.get("suites") or []]),
        ics=_option_text(options, "--ics"), ixit=_option_text(options, "--ixit"),
        note=f"Re-test of release {version} for the product record (queued run {row.id}), booked by the lab")
    if made:
        _keeper_audit(svc, f"/bookings/{booking.id}", f"booking {booking.id} made for re-test run {row.run_id} of "
                                                      f"{model} release {version} (queued run {row.id})", 201)
    return booking.id


def _finished(svc: Services, model: str, record: dict[str, Any], release: dict[str, Any],
              row: QueuedRun) -> dict[str, Any]:
    """The re-test's outcome once its queued run ended: the verdict delta, or failed with why. A run
    that left verdicts gets its booking first, then its report made and approved."""
    retest = dict(release.get("retest") or {})
    retest.update(run_id=row.run_id, ended_at=stamp(now()))

    def failed(reason: str) -> dict[str, Any]:
        return {**retest, "state": "failed", "verdict": doc.INCONCLUSIVE, "delta": None, "flagged": False,
                "reason": reason}

    if row.state != "done":
        return failed(f"the queued run {row.id} {row.state}: {_queue_error(svc, row.id) or 'no reason recorded'}")
    if not row.run_id:
        return failed(f"the queued run {row.id} ended without a run")
    run_dir = report_actions.run_dir_of(svc, row.run_id)
    if not (run_dir / "verdicts.json").is_file():
        return failed(f"run {row.run_id} left no verdicts in {run_dir}")
    booking_id = _retest_booking(svc, model, release["version"], row)
    try:
        unapproved, automatic = _report(svc, run_dir)
    except ActionError as exc:
        return failed(f"the re-test's report could not be made: {exc}")
    if booking_id is not None and report_actions.is_approved(run_dir):
        mark_reported(svc.store, booking_id=booking_id, run_id=row.run_id)  # its manufacturer reads it now
    path = run_dir / JSON_FILE
    try:
        raw = path.read_bytes()
        conformance = json.loads(raw)
        verdicts = provision_verdicts(conformance)  # ValueError naming the entry of a malformed report
    except (OSError, ValueError) as exc:
        return failed(f"run {row.run_id}: its conformance.json is unusable ({exc})")
    if not any(v != "NOT_ASSESSED" for v in verdicts.values()):
        return failed(f"run {row.run_id} assessed no provision")
    delta = verdict_delta((record.get("baseline") or {}).get("provisions") or {}, verdicts)
    approval = conformance.get("approval") if isinstance(conformance.get("approval"), dict) else None
    summary = conformance.get("summary") if isinstance(conformance.get("summary"), dict) else {}
    return {**retest, "state": "done", "verdict": summary.get("overall") or doc.INCONCLUSIVE,
            "delta": delta, "flagged": bool(delta.get("flagged")), "report_url": f"/reports/{row.run_id}",
            "conformance_sha256": hashlib.sha256(raw).hexdigest(), "reason": unapproved,
            "approval": ({"by": approval.get("by"), "role": approval.get("role"), "at": approval.get("at"),
                          "automatic": automatic} if approval and not unapproved else None)}


def _notify_flagged(svc: Services, model: str, version: str, retest: dict[str, Any], revision_doc: dict) -> None:
    """A release that turned a provision from PASS to FAIL: the audit log and the lab's webhook."""
    failing = list((retest.get("delta") or {}).get("newly_failing") or [])
    where = f"{record_path(model)}/revisions/{revision_doc['seq']}"
    _keeper_audit(svc, where, f"record.flagged: {model} release {version} newly failing {', '.join(failing)}")
    url = svc.settings.record_webhook_url
    if not url:
        return
    payload = {"event": "record.flagged", "model": model, "version": version, "newly_failing": failing,
               "record_url": record_path(model), "revision": {"seq": revision_doc["seq"], "hash": revision_doc["hash"]}}
    delivery = post_json(url, payload, secret=svc.settings.record_webhook_secret)
    _keeper_audit(svc, where, f"record.flagged webhook {delivery.describe()}", 200 if delivery.ok else 502)


def _settle_one(svc: Services, model: str, release: dict[str, Any]) -> str | None:
    """Move one release's re-test on if its queued run moved; a line saying what changed, or None."""
    version = release["version"]
    retest = release.get("retest") or {}
    row = _queue_row(svc, retest.get("queued_id"))
    if row is None:
        outcome: dict[str, Any] | None = {**retest, "state": "failed", "verdict": doc.INCONCLUSIVE,
                                          "reason": f"queued run {retest.get('queued_id')} is not in the queue",
                                          "ended_at": stamp(now())}
    elif row.state == "pending":
        return None
    elif row.state == "claimed":
        if retest.get("state") == "running" and retest.get("run_id") == row.run_id:
            return None
        outcome = {**retest, "state": "running", "run_id": row.run_id}
    else:
        outcome = None
    last = store.last_revision(svc.store, model)
    if outcome is None:
        outcome = _finished(svc, model, last["record"] if last else {}, release, row)
    queued_id = retest.get("queued_id")
    summary = {"running": f"re-test of {version} running (run {outcome.get('run_id')})",
               "done": f"re-test of {version}: {outcome.get('verdict')}"
                       + (" - FLAGGED: newly failing " + ", ".join((outcome.get("delta") or {}).get("newly_failing")
                                                                   or []) if outcome.get("flagged") else ""),
               "failed": f"re-test of {version} failed: INCONCLUSIVE ({outcome.get('reason')})"}[outcome["state"]]

    def change(record: dict[str, Any] | None) -> Change:
        current = (doc.release_of(record or {}, version) or {}).get("retest") or {}
        if current.get("queued_id") != queued_id or current.get("state") not in doc.PENDING_RETESTS:
            raise Conflict(f"release {version}'s re-test changed meanwhile")  # an engineer re-queued it
        return Change("retest", summary, doc.set_retest(record or {}, version, outcome))

    try:
        revision_doc = append_revision(svc, model, KEEPER, change)
    except Conflict:
        return None
    _keeper_audit(svc, f"{record_path(model)}/revisions/{revision_doc['seq']}", summary)
    if outcome.get("flagged"):
        _notify_flagged(svc, model, version, outcome, revision_doc)
    return f"{model}: {summary}"


def settle_retests(svc: Services, quiet: dict[str, int] | None = None) -> list[str]:
    """The keeper's round: every pending re-test whose queued run moved is written into its record.
    Only one process settles at a time (another's round is skipped, not waited for). `quiet`, kept
    by the caller from round to round, holds the models whose last revision (by seq) had no pending
    re-test: their documents are not read again until a new revision comes (only a revision starts
    a re-test), so a round reads the records with work, not every record's whole text."""
    done: list[str] = []
    quiet = {} if quiet is None else quiet
    with keeper_turn(svc.settings.data_dir) as mine:
        if not mine:
            return done
        for head in store.heads(svc.store, limit=INDEX_LIMIT, unchanged=quiet):
            if head.last is None:
                continue
            pending = doc.pending_retests(head.last["record"])
            if not pending:
                quiet[head.record.model] = int(head.last["seq"])
                continue
            quiet.pop(head.record.model, None)
            for release in pending:
                line = _settle_one(svc, head.record.model, release)
                if line:
                    done.append(line)
    return done


def record_keeper(svc: Services, period: float = 5.0) -> Periodic:
    """The app's thread that calls `settle_retests` every `period` seconds until stopped."""
    quiet: dict[str, int] = {}  # what this keeper's rounds need not read again (settle_retests)
    return Periodic("certlab-record-keeper", lambda: settle_retests(svc, quiet), period)
