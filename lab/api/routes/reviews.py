"""A certification body's review of a report released to it: accepted or rejected, with a comment.

Only the organisations a report was released to may review it; each sees its own reviews, while
the lab and the manufacturer see every review of the run.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from lab.api.deps import AnyRole, Certifier, ServicesDep
from lab.api.routes.reports import is_approved, run_dir_of, visible_run
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors
from lab.api.schemas.service import ReviewIn, ReviewOut, RunIdPath
from lab.store import service

router = APIRouter(tags=["reviews"], responses=errors(*AUTHENTICATED))


@router.post("/runs/{run_id}/reviews", response_model=ReviewOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, 422, why={409: "The report is not approved (any more)"}),
             summary="Record your decision on a report released to your organisation (certifiers)")
def add_review(run_id: RunIdPath, body: ReviewIn, who: Certifier, svc: ServicesDep) -> ReviewOut:
    booking = visible_run(svc, who, run_id)  # 404 unless released to the caller's organisation
    if not is_approved(run_dir_of(svc, run_id)):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}: the report is not approved (any more)")
    row = service.add_review(svc.store, run_id=run_id, booking_id=booking.id, org_id=who.org_id, reviewer=who.id,
                             decision=body.decision, comment=body.comment)
    return ReviewOut(id=row.id, run_id=run_id, organisation=who.org, reviewer=who.name,
                     decision=row.decision, comment=row.comment, at=row.at)  # type: ignore[arg-type]


@router.get("/runs/{run_id}/reviews", response_model=list[ReviewOut], responses=errors(404, 422),
            summary="The reviews of a run's report (a certifier: its organisation's)")
def list_reviews(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> list[ReviewOut]:
    visible_run(svc, who, run_id)
    rows = service.reviews(svc.store, run_id=run_id, org_id=who.org_id if who.role == "certifier" else None)
    return [ReviewOut(id=r.id, run_id=run_id, organisation=org, reviewer=user, decision=r.decision,  # type: ignore[arg-type]
                      comment=r.comment, at=r.at) for r, user, org in rows]
