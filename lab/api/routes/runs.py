"""Testing a booking over the API: start, follow, cancel. The work is `lab.actions.runs` (the
launcher, the launch record, the follower); these routes parse the request and shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, status

from lab.actions import runs as actions
from lab.actions.runs import RunLauncher
from lab.api.deps import Allow, Caller, Engineer, ServicesDep
from lab.api.schemas.bookings import IdPath
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors
from lab.api.schemas.service import RunIdPath, RunOut, RunStart

router = APIRouter(tags=["runs"], responses=errors(*AUTHENTICATED))

# a certification body reads the report released to it, not the run's progress
FollowsRuns = Annotated[Caller, Depends(Allow(*actions.FOLLOWS_RUNS))]


def launcher(request: Request) -> RunLauncher:
    """The app's launcher (made by create_app): it reaps the run processes this server started."""
    return request.app.state.run_launcher


def _out(run: actions.RunStatus) -> RunOut:
    return RunOut.model_validate(run.as_dict())


@router.post("/bookings/{booking_id}/runs", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Start testing an accepted booking (lab engineers)",
             responses=errors(403, 404, *BODY, 422, 504, why={
                 409: "The booking is not accepted, or no bench holds its model"}))
def start_run(booking_id: IdPath, request: Request, who: Engineer, svc: ServicesDep,
              body: Annotated[RunStart | None, Body()] = None) -> RunOut:
    body = body or RunStart()
    return _out(actions.start_run(svc, who, booking_id, launcher=launcher(request), suites=body.suites,
                                  benches=body.benches))


@router.get("/runs/{run_id}", response_model=RunOut, responses=errors(403, 404, 422),
            summary="A run's status, progress per bench and verdicts")
def get_run_status(run_id: RunIdPath, who: FollowsRuns, svc: ServicesDep) -> RunOut:
    return _out(actions.run_status(svc, who, run_id))


@router.post("/runs/{run_id}/cancel", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Cancel a running run, as Ctrl-C would (lab engineers)",
             responses=errors(403, 404, 422, why={409: "The run is not running"}))
def cancel_run(run_id: RunIdPath, who: Engineer, svc: ServicesDep) -> RunOut:
    return _out(actions.cancel_run(svc, who, run_id))


@router.get("/bookings/{booking_id}/runs", response_model=list[RunOut], responses=errors(403, 404, 422),
            summary="The runs of a booking, oldest first")
def booking_runs(booking_id: IdPath, who: FollowsRuns, svc: ServicesDep) -> list[RunOut]:
    return [_out(r) for r in actions.booking_run_statuses(svc, who, booking_id)]
