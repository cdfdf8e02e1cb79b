"""A certification body's review of a report released to it: accepted or rejected, with a comment
and, where it disagrees, a comment per provision.

Only the organisations a report was released to may review it; each sees its own reviews, while
the lab and the manufacturer see every review of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid
from lab.actions.reports import is_approved, run_dir_of, visible_run
from lab.reports.conformance import JSON_FILE
from lab.store import service
from lab.store.models import REVIEW_DECISIONS

COMMENT_MAX = 20_000
PROVISION_COMMENTS_MAX = 500  # more provisions than EN 303 645 has


@dataclass(frozen=True)
class ReviewRow:
    id: int
    run_id: str
    organisation: str
    reviewer: str
    decision: str
    comment: str
    at: datetime
    provision_comments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Provision:
    id: str
    title: str
    verdict: str


def report_provisions(svc: Services, run_id: str) -> list[Provision]:
    """The provisions the run's conformance report lists, in its order (for per-provision comments)."""
    try:
        doc = json.loads((run_dir_of(svc, run_id) / JSON_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    provisions = doc.get("provisions") if isinstance(doc, dict) else None
    return [Provision(str(p["id"]), str(p.get("title") or ""), str(p.get("verdict") or ""))
            for p in (provisions if isinstance(provisions, list) else []) if isinstance(p, dict) and p.get("id")]


def _clean_comments(svc: Services, run_id: str, comments: dict[str, str] | None) -> dict[str, str]:
    """Per-provision comments, empty ones dropped; each must name a provision of the report."""
    given = {str(k).strip(): str(v).strip() for k, v in (comments or {}).items() if str(v).strip()}
    if len(given) > PROVISION_COMMENTS_MAX:
        raise Invalid(["body", "provision_comments"], f"provision_comments: {len(given)} comments; fix: at most "
                                                      f"{PROVISION_COMMENTS_MAX}, one per provision")
    known = {p.id for p in report_provisions(svc, run_id)}
    for provision, text in given.items():
        if provision not in known:
            example = f" (e.g. {sorted(known)[0]})" if known else " (its conformance.json lists none: comment in 'comment')"
            raise Invalid(["body", "provision_comments", provision],
                          f"provision_comments: {provision!r} is not a provision of this report; fix: use an id "
                          f"its conformance report lists{example}")
        if len(text) > COMMENT_MAX:
            raise Invalid(["body", "provision_comments", provision],
                          f"provision_comments[{provision}]: {len(text)} characters; fix: at most {COMMENT_MAX}")
    return given


def add_review(svc: Services, who: Caller, run_id: str, *, decision: str, comment: str = "",
               provision_comments: dict[str, str] | None = None) -> ReviewRow:
    """Record the certifier's decision on a report released to its organisation."""
    if who.role != "certifier":
        raise Forbidden("only certifiers review reports")
    booking = visible_run(svc, who, run_id)  # NotFound unless released to the caller's organisation
    if decision not in REVIEW_DECISIONS:
        raise Invalid(["body", "decision"], f"decision: {decision!r}; fix: choose one of {', '.join(REVIEW_DECISIONS)}")
    if len(comment) > COMMENT_MAX:
        raise Invalid(["body", "comment"], f"comment: {len(comment)} characters; fix: at most {COMMENT_MAX}")
    per_provision = _clean_comments(svc, run_id, provision_comments)
    if not is_approved(run_dir_of(svc, run_id)):
        raise Conflict(f"run {run_id}: the report is not approved (any more)")
    row = service.add_review(svc.store, run_id=run_id, booking_id=booking.id, org_id=who.org_id, reviewer=who.id,
                             decision=decision, comment=comment, provision_comments=per_provision)
    return ReviewRow(id=row.id, run_id=run_id, organisation=who.org, reviewer=who.name, decision=row.decision,
                     comment=row.comment, at=row.at, provision_comments=dict(row.provision_comments or {}))


def reviews(svc: Services, who: Caller, run_id: str) -> list[ReviewRow]:
    """The run's reviews (a certifier: its organisation's only), oldest first; one query."""
    visible_run(svc, who, run_id)
    rows = service.reviews(svc.store, run_id=run_id, org_id=who.org_id if who.role == "certifier" else None)
    return [ReviewRow(id=r.id, run_id=run_id, organisation=org, reviewer=user, decision=r.decision, comment=r.comment,
                      at=r.at, provision_comments=dict(r.provision_comments or {})) for r, user, org in rows]
