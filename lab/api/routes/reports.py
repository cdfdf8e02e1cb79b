"""A run's lab report over the API: made, approved and released by the lab, read by its
manufacturer and the certification bodies it was released to. The rules are `lab.actions.reports`
(the same the web pages use); these routes parse the request and shape the answer."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, Response

from lab.actions import reports as actions
from lab.api.deps import AnyRole, Engineer, ServicesDep
from lab.api.schemas.errors import AUTHENTICATED, BODY, download, errors
from lab.api.schemas.service import ApproveIn, ReleaseIn, ReleaseOut, ReportOut, RunIdPath

router = APIRouter(tags=["reports"], responses=errors(*AUTHENTICATED))
DOWNLOAD = errors(404, 422, why={409: "The report is not approved yet (the manufacturer and certifiers wait for it)",
                                 410: "The run's directory is no longer in the reports folder"})
FILES = actions.FILES


def report_out(state: actions.ReportState) -> ReportOut:
    return ReportOut(**asdict(state))


def release_out(row: actions.Release) -> ReleaseOut:
    return ReleaseOut(run_id=row.run_id, booking_id=row.booking_id, organisation=row.organisation, at=row.at)


@router.post("/runs/{run_id}/report", response_model=ReportOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, 504, why={
                 409: "The run has not finished, its report is approved already or being made",
                 422: "`certlab report` refused the run (its one-line error)"}),
             summary="Make the run's report: Allure, conformance report (HTML, JSON, PDF), signed (lab engineers)")
def make_report(run_id: RunIdPath, who: Engineer, svc: ServicesDep) -> ReportOut:
    return report_out(actions.make_report(svc, who, run_id))


@router.post("/runs/{run_id}/report/approve", response_model=ReportOut, include_in_schema=False)
@router.post("/runs/{run_id}/approve", response_model=ReportOut,
             responses=errors(403, 404, *BODY, 504, why={
                 409: "No report yet, approved already, or being made",
                 422: "Invalid body, or `certlab report approve` refused it (e.g. not a signatory of the profile)"}),
             summary="Approve the report's draft as an authorised signatory of the lab profile (lab engineers)")
def approve(run_id: RunIdPath, body: ApproveIn, who: Engineer, svc: ServicesDep) -> ReportOut:
    return report_out(actions.approve_report(svc, who, run_id, by=body.by, role=body.role))


@router.post("/runs/{run_id}/release", response_model=ReleaseOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, why={409: "Only an approved report is released",
                                                  422: "Invalid body, or an organisation without a certifier"}),
             summary="Release the approved report to a certification body (lab engineers)")
def release(run_id: RunIdPath, body: ReleaseIn, who: Engineer, svc: ServicesDep) -> ReleaseOut:
    return release_out(actions.release_report(svc, who, run_id, body.organisation))


@router.get("/runs/{run_id}/releases", response_model=list[ReleaseOut], responses=errors(404, 422),
            summary="Who the report was released to (a certifier sees only its own release)")
def list_releases(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> list[ReleaseOut]:
    return [release_out(row) for row in actions.releases(svc, who, run_id)]


@router.get("/runs/{run_id}/report", response_model=ReportOut,
            responses=errors(404, 422, why={409: "The report is being written"}),
            summary="The report's status (draft or approved), id, overall verdict and counts")
def get_report(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> ReportOut:
    return report_out(actions.get_report(svc, who, run_id))


def _download(name: str):
    def download(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> FileResponse:
        got = actions.report_file(svc, who, run_id, name)
        return FileResponse(got.path, media_type=got.media_type, filename=got.filename)

    download.__name__ = f"download_{name.replace('.', '_')}"
    return download


for _name in FILES:
    router.add_api_route(f"/runs/{{run_id}}/report/{_name}", _download(_name), methods=["GET"],
                         response_class=Response,
                         responses={**download(FILES[_name][1], f"{_name} of the run"), **DOWNLOAD},
                         summary=f"Download {_name} (the manufacturer and certifiers: once approved)")


@router.get("/runs/{run_id}/report/archive", response_class=Response,
            responses={**download("application/gzip", "The run directory as .tar.gz"), **DOWNLOAD},
            summary="The whole run directory as .tar.gz: evidence, logs, manifest and signature (once approved)")
def archive(run_id: RunIdPath, who: AnyRole, svc: ServicesDep) -> FileResponse:
    """Built once per report version and kept (lab/reports/archive.py): a download sends stored,
    re-verified bytes, and concurrent downloads of one report wait for one build."""
    try:
        got = actions.report_archive(svc, who, run_id)
    except actions.ArchiveNotReady as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc),
                            headers={"Retry-After": str(exc.retry_after)}) from None
    return FileResponse(got.path, media_type=got.media_type, filename=got.filename)
