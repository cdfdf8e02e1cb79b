"""Reports in the browser: the lab makes, approves and releases them; the manufacturer downloads its
approved ones; a certifier reads those released to it, with their verification state checked here
with `certlab verify`'s code, and records its review (a decision, and a comment per provision
where it disagrees). The conformance report, the Allure report and the evidence open in place,
from the run directory, each under its own Content-Security-Policy. Everything is
`lab.actions.reports` and `lab.actions.reviews`."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response

from lab.actions import reports as actions
from lab.actions import reviews
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Invalid
from lab.webui.deps import CertifierView, EngineerView, SvcDep, Viewer
from lab.webui.render import form_errors, page, see_other

router = APIRouter(include_in_schema=False)

RunId = Annotated[str, Path(min_length=1, max_length=64)]
PageNo = Annotated[int, Query(alias="page", ge=1, le=100_000)]
COMMENT_FIELD = "pc-"  # the review form's per-provision comment fields: pc-<provision id>
STAGES = {  # stage -> what it means for the person reading, and what comes next
    "running": "The run has not finished yet.",
    "to make": "The run has finished; make its report next.",
    "draft": "A draft: an authorised signatory approves it next.",
    "approved": "Approved and signed: release it to a certification body.",
    "gone": "Its run directory is no longer in the reports folder.",
}


@router.get("/reports")
def reports_page(request: Request, svc: SvcDep, who: Viewer, page_no: PageNo = 1) -> HTMLResponse:
    size = actions.LIST_LIMIT
    rows, total = actions.report_rows(svc, who, offset=(page_no - 1) * size, limit=size)
    groups: dict[str, list[actions.ReportRow]] = {}
    if who.is_engineer:
        for row in rows:
            key = "released" if row.released_to else row.stage
            groups.setdefault(key, []).append(row)
    pages = max(1, -(-total // size))
    return page(request, "reports/list.html", rows=rows, groups=groups, total=total, page_no=page_no,
                pages=pages, stages=STAGES)


def _detail(request: Request, svc: Services, who: Caller, run_id: str, *, status: int = 200,
            errors: dict[str, str] | None = None, form: dict[str, str] | None = None) -> HTMLResponse:
    """The report page: what exists, what comes next, and the forms the caller's role has."""
    booking = actions.visible_run(svc, who, run_id)
    run_dir = actions.run_dir_of(svc, run_id)
    stage = actions.stage(run_dir) if run_dir.is_dir() else "gone"
    if not who.is_engineer and stage != "approved":  # a draft may still change: the lab's alone
        raise Conflict(f"run {run_id}: its report is not approved yet; it opens here once the lab approves it")
    state = actions.report_state(run_dir, run_id) if stage in ("draft", "approved") else None
    check = actions.verification(svc, who, run_id) if stage in ("draft", "approved") else None
    allure = actions.allure_page(run_dir) if stage in ("draft", "approved") else None
    context = dict(
        run_id=run_id, booking=booking, stage=stage, report=state,
        stage_text=STAGES.get(stage, "") if who.is_engineer else "Approved and signed by the lab.",
        check=check, allure=allure, errors=errors or {}, form=form or {},
        releases=actions.releases(svc, who, run_id), reviews=reviews.reviews(svc, who, run_id),
        signatories=actions.signatories(svc, who) if who.is_engineer and stage == "draft" else [],
        organisations=actions.certifier_organisations(svc, who) if who.is_engineer and stage == "approved" else [],
        provisions=reviews.report_provisions(svc, run_id) if who.role == "certifier" else [],
        comment_field=COMMENT_FIELD,
        open_comments=any(k.startswith(COMMENT_FIELD) for k in [*(errors or {}), *(form or {})]),
    )
    context["sig_options"] = [(f"{name}|{role}", f"{name} ({role})") for name, role in context["signatories"]]
    return page(request, "reports/detail.html", status=status, **context)


@router.get("/reports/{run_id}")
def report_page(request: Request, run_id: RunId, svc: SvcDep, who: Viewer) -> HTMLResponse:
    return _detail(request, svc, who, run_id)


@router.post("/reports/{run_id}/make")
def make(request: Request, run_id: RunId, svc: SvcDep, who: EngineerView) -> Response:
    try:
        actions.make_report(svc, who, run_id)
    except Invalid as exc:
        return _detail(request, svc, who, run_id, status=422, errors={"make": exc.msg})
    return see_other(request, f"/reports/{quote(run_id)}", "The report is made and signed. Read it, then approve it.")


@router.post("/reports/{run_id}/approve")
async def approve(request: Request, run_id: RunId, svc: SvcDep, who: EngineerView) -> Response:
    form = await request.form()
    by, role = str(form.get("by") or ""), str(form.get("role") or "")
    if "signatory" in form:  # the profile's list: "name|role" in one control
        by, _, role = str(form.get("signatory") or "").partition("|")
    try:
        await run_in_threadpool(actions.approve_report, svc, who, run_id, by=by, role=role)
    except Invalid as exc:
        errors = form_errors(exc)
        if "signatory" in form and set(errors) & {"by", "role"}:
            errors = {"signatory": exc.msg}
        elif exc.field == "run_id":
            errors = {"approve": exc.msg}
        return await run_in_threadpool(_detail, request, svc, who, run_id, status=422, errors=errors,
                                       form={"by": by, "role": role})
    return see_other(request, f"/reports/{quote(run_id)}",
                     f"Approved by {by}. The manufacturer can now download it; release it to a certification body.")


@router.post("/reports/{run_id}/release")
async def release(request: Request, run_id: RunId, svc: SvcDep, who: EngineerView) -> Response:
    form = await request.form()
    organisation = str(form.get("organisation") or "").strip()
    try:
        if not organisation:
            raise Invalid(["body", "organisation"], "organisation: none chosen; fix: choose the certification body")
        await run_in_threadpool(actions.release_report, svc, who, run_id, organisation)
    except Invalid as exc:
        return await run_in_threadpool(_detail, request, svc, who, run_id, status=422, errors=form_errors(exc),
                                       form={"organisation": organisation})
    return see_other(request, f"/reports/{quote(run_id)}", f"Released to {organisation}: its certifiers can read "
                                                           f"and review the report now.")


@router.post("/reports/{run_id}/reviews")
async def review(request: Request, run_id: RunId, svc: SvcDep, who: CertifierView) -> Response:
    form = await request.form()
    decision = str(form.get("decision") or "")
    comment = str(form.get("comment") or "")
    per_provision = {str(key)[len(COMMENT_FIELD):]: str(value) for key, value in form.items()
                     if str(key).startswith(COMMENT_FIELD) and str(value).strip()}
    try:
        if not decision:
            raise Invalid(["body", "decision"], "decision: none chosen; fix: choose accepted or rejected")
        await run_in_threadpool(reviews.add_review, svc, who, run_id, decision=decision, comment=comment,
                                provision_comments=per_provision)
    except Invalid as exc:
        name = exc.field
        if len(exc.loc) >= 3 and exc.loc[-2] == "provision_comments":
            name = COMMENT_FIELD + str(exc.loc[-1])
        kept = {"decision": decision, "comment": comment, **{COMMENT_FIELD + k: v for k, v in per_provision.items()}}
        return await run_in_threadpool(_detail, request, svc, who, run_id, status=422, errors={name: exc.msg},
                                       form=kept)
    return see_other(request, f"/reports/{quote(run_id)}", f"Your review ({decision}) is recorded; the lab and the "
                                                           f"manufacturer see it.")


@router.get("/reports/{run_id}/download/{name}")
def download(run_id: RunId, name: Annotated[str, Path(max_length=32)], svc: SvcDep, who: Viewer) -> FileResponse:
    """conformance.pdf/.html/.json or the archive, as a file to save (once approved, but for the lab)."""
    got = actions.report_archive(svc, who, run_id) if name == "archive" else actions.report_file(svc, who, run_id, name)
    return FileResponse(got.path, media_type=got.media_type, filename=got.filename)


@router.get("/reports/{run_id}/files/{rel:path}")
def run_file(run_id: RunId, rel: str, svc: SvcDep, who: Viewer) -> FileResponse:
    """A file of the run directory opened in place (the conformance report, the Allure report, the
    evidence they link to), read-only, under its own policy: only the Allure page runs scripts."""
    got = actions.run_file(svc, who, run_id, rel)
    return FileResponse(got.path, media_type=got.media_type,
                        headers={"Content-Security-Policy": got.csp, "X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "private, no-cache"})
