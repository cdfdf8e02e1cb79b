"""A certification body's review of a report released to it, over the API; the rules are
`lab.actions.reviews` (the same the web pages use)."""

from __future__ import annotations

from fastapi import APIRouter, status

from lab.actions import reviews as actions
from lab.api.deps import AnyRole, Certifier, ServicesDep
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors
from lab.api.schemas.service import ReviewIn, ReviewOut, RunIdPath

router = APIRouter(tags=["reviews"], responses=errors(*AUTHENTICATED))


def review_out(row: actions.ReviewRow) -> ReviewOut:
    return ReviewOut(id=row.id, run_id=row.run_id, organisation=row.organisation, reviewer=row.reviewer,
                     decision=row.decision, comment=row.comment, at=row.at,  # type: ignore[arg-type]
                     provision_comments=row.provision_comments)


@router.post("/runs/{run_id}/reviews", response_model=ReviewOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, 422, why={409: "The report is not approved (any more)"}),
             summary="Record your decision on a report released to your organisation (certifiers)")
def add_review(run_id: RunIdPath, body: ReviewIn, who: Certifier, svc: ServicesDep) -> ReviewOut:
    return review_out(actions.add_review(svc, who, run_id, decision=body.decision, comment=body.comment,
                                         provision_comments=body.provision_comments))


@router.get("/runs/{run_id}/reviews", response_model=list[ReviewOut], responses=errors(404, 422),
            summary="The reviews of a run's report (a certifier: its organisation's)")
def list_reviews(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> list[ReviewOut]:
    return [review_out(row) for row in actions.reviews(svc, who, run_id)]
