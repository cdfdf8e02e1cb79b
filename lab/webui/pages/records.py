"""Product records in the browser: the public page of each certified product (`/public/records`, no
account needed) with its headline figures first, then the certification, support, releases with
their SBOM diff and re-test delta, advisories, the signed revisions and how to verify them; the
product's manufacturer registers releases and advisories there, an engineer opens a record from an
approved report. Every rule (who may, what is valid, what the figures are) is in
`lab.actions.records`; the helpers here only shape its answer for reading.

Signed-out visitors are rate-limited per client address, as the public JSON is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from lab.actions import records as actions
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Invalid, NotFound, TooLarge
from lab.webui.deps import EngineerView, SvcDep, Viewer, session_of
from lab.webui.render import page, see_other

router = APIRouter(include_in_schema=False)

INDEX = "/public/records"
Model = Annotated[str, Path(min_length=1, max_length=128)]  # as lab.actions.records.SAFE_MODEL
RunId = Annotated[str, Path(min_length=1, max_length=64)]
Version = Annotated[str, Path(min_length=1, max_length=64)]
MAX_DOCUMENT = 16 * 1024 * 1024  # an SBOM or a CSAF advisory larger than this is not one a person uploads
RELEASE_FIELDS = ("image", "sbom", "released_on")
ADVISORY_FIELDS = ("csaf",)
SHORT_HASH = 12  # hex digits of a revision's hash shown in the list (the link leads to the whole)


def page_url(model: str) -> str:
    return f"{INDEX}/{quote(model, safe='')}"


def chain_url(request: Request, model: str) -> str:
    """The absolute address of the record's chain document, what `certlab verify-record` reads."""
    return f"{str(request.base_url).rstrip('/')}/records/{quote(model, safe='')}/revisions"


# --- shaping the record for reading (pure: unit-tested) ---------------------------------------------


@dataclass(frozen=True)
class AdvisoryState:
    open: bool
    text: str  # "open for 12 days", "fixed in 1.5.0", ...


def days_between(earlier: str | None, later: str | None) -> int | None:
    """Whole days from one ISO date (or date-time) to another; None when either is missing or unreadable."""
    try:
        return (date.fromisoformat(str(later)[:10]) - date.fromisoformat(str(earlier)[:10])).days
    except (TypeError, ValueError):
        return None


def advisory_state(advisory: dict[str, Any], record: dict[str, Any], figures: dict[str, Any]) -> AdvisoryState:
    """Open (listed by the figures as affecting the current firmware) for how long, else which
    registered release fixed it; the figures decide what is open, never this page."""
    if advisory.get("id") in (figures.get("open_advisory_ids") or []):
        days = days_between(advisory.get("published"), figures.get("as_of"))
        return AdvisoryState(True, "open" if days is None else f"open for {days} day{'' if days == 1 else 's'}")
    fixed = set(advisory.get("fixed") or [])
    fixing = next((r.get("version") for r in record.get("releases") or [] if r.get("version") in fixed), None)
    if fixing:
        return AdvisoryState(False, f"fixed in {fixing}")
    return AdvisoryState(False, "not affecting the current firmware")


def sbom_summary(diff: dict[str, Any] | None) -> str:
    """One line of a release's SBOM change: "2 added, 1 removed, 3 changed, 40 unchanged (against release 1.6.0's SBOM)"."""
    if not diff:
        return "no SBOM comparison"
    parts = [f"{len(diff.get('added') or [])} added", f"{len(diff.get('removed') or [])} removed",
             f"{len(diff.get('changed') or [])} changed", f"{int(diff.get('unchanged') or 0)} unchanged"]
    against = diff.get("against")
    return ", ".join(parts) + (f" (against release {against}'s SBOM)" if against
                               else " (the first SBOM registered: every component is new)")


def when(stamp: str | None) -> str:
    """An ISO UTC time stamp as people read it: "2026-12-06 10:20 UTC" (a date stays a date)."""
    text = str(stamp or "")
    if len(text) >= 16 and text[10] == "T":
        return f"{text[:10]} {text[11:16]} UTC"
    return text


def support_text(figures: dict[str, Any]) -> str:
    days = figures.get("support_days_left")
    if days is None:
        return "not declared"
    if days < 0:
        return f"ended {-days} day{'' if days == -1 else 's'} ago"
    return f"{days} day{'' if days == 1 else 's'} left"


def revision_rows(revisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The revisions for the list (seq, at, kind, summary, hash as `actions.revision_list` gives them),
    newest first, each with its short hash."""
    rows = [{**r, "hash": r.get("hash") or "", "short": (r.get("hash") or "")[:SHORT_HASH]} for r in revisions]
    return sorted(rows, key=lambda r: r.get("seq") or 0, reverse=True)


def sbom_url(model: str, release: dict[str, Any]) -> str | None:
    """Where a release's SBOM is served as uploaded; None for one registered before SBOMs were kept apart."""
    if not isinstance((release.get("sbom") or {}).get("components"), int):
        return None
    return f"/records/{quote(model, safe='')}/releases/{quote(str(release.get('version')), safe='')}/sbom"


def document_path(parts: list[str | int]) -> str:
    """A field's path inside an uploaded JSON document as its author reads it: `components[3].name`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def field_errors_of(exc: Invalid, fields: tuple[str, ...], fallback: str) -> dict[str, str]:
    """The message at the form's field the error names; an error inside an uploaded document at its
    file input, led by the document's field path (`sbom` at `["body", "sbom", "components", 3, "name"]`)."""
    loc = exc.loc[1:] if exc.loc[:1] in (["body"], ["query"]) else exc.loc
    if loc and loc[0] in fields:
        inner = document_path(list(loc[1:]))
        return {str(loc[0]): f"{inner}: {exc.msg}" if inner and not exc.msg.startswith(inner) else exc.msg}
    return {fallback: exc.msg}


# --- pages ----------------------------------------------------------------------------------------


def _throttled(request: Request, svc: Services) -> Response | None:
    """A signed-out visitor's page views count per client address (a signed-in one's count in the guard)."""
    if session_of(request) is not None:
        return None
    address = request.client.host if request.client else "unknown"
    wait = svc.limiter.allow(f"public:{address}")
    if wait:
        return PlainTextResponse(f"too many requests; retry in {wait:.1f} s", status_code=429,
                                 headers={"Retry-After": str(max(1, round(wait)))})
    return None


def _who(request: Request) -> Caller | None:
    view = session_of(request)
    return view.caller if view is not None else None


@router.get(INDEX)
def index_page(request: Request, svc: SvcDep) -> Response:
    if (refused := _throttled(request, svc)) is not None:
        return refused
    return page(request, "records/index.html", records=actions.public_index(svc), support_text=support_text)


def _record_page(request: Request, svc: Services, model: str, *, status: int = 200,
                 errors: dict[str, str] | None = None, form: str = "") -> HTMLResponse:
    who = _who(request)
    view = actions.public_view(svc, model)
    record, figures = view["record"], view["figures"]
    advisories = [{**a, "state": advisory_state(a, record, figures)} for a in record.get("advisories") or []]
    releases = list(reversed(record.get("releases") or []))  # newest first
    return page(request, "records/record.html", status=status, view=view, record=record, figures=figures,
                releases=releases, advisories=advisories, revisions=revision_rows(actions.revision_list(svc, model)),
                chain_url=chain_url(request, view["model"]), page_url=page_url(view["model"]),
                can_manage=actions.can_manage(svc, who, view["model"]), errors=errors or {}, form=form,
                sbom_summary=sbom_summary, sbom_url=sbom_url, support_text=support_text, when=when)


@router.get(INDEX + "/{model}")
def record_page(request: Request, svc: SvcDep, model: Model) -> Response:
    if (refused := _throttled(request, svc)) is not None:
        return refused
    return _record_page(request, svc, model)


def _read(upload: UploadFile | None, name: str) -> bytes | None:
    """An uploaded document's bytes (None when none was chosen); beyond MAX_DOCUMENT refused at its field."""
    if upload is None or not upload.filename:
        return None
    data = upload.file.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise Invalid(["body", name], f"{upload.filename}: larger than {MAX_DOCUMENT // (1024 * 1024)} MiB; "
                                      f"fix: upload the JSON document itself, not an archive of it")
    return data


@router.post(INDEX + "/{model}/releases")
def add_release(request: Request, svc: SvcDep, who: Viewer, model: Model,
                image: Annotated[UploadFile | None, File()] = None, sbom: Annotated[UploadFile | None, File()] = None,
                released_on: Annotated[str, Form(max_length=32)] = "") -> Response:
    try:
        if image is None or not image.filename:
            raise Invalid(["body", "image"], "image: none chosen; fix: choose the firmware image file "
                                             "(e.g. TH-100-1.5.0.clfw)")
        sbom_bytes = _read(sbom, "sbom")
        if sbom_bytes is None:
            raise Invalid(["body", "sbom"], "sbom: none chosen; fix: choose the release's CycloneDX JSON SBOM")
        done = actions.add_release(svc, who, model, image.file, image.filename, sbom_bytes,
                                   released_on.strip() or None)
    except Invalid as exc:
        return _record_page(request, svc, model, status=422, errors=field_errors_of(exc, RELEASE_FIELDS, "image"),
                            form="release")
    except (Conflict, TooLarge) as exc:
        return _record_page(request, svc, model, status=exc.status, errors={"image": str(exc)}, form="release")
    release = done.get("release") or {}
    queued = (done.get("retest") or {}).get("queued_id")
    then = f" Its re-test is queued (queued run {queued}); the record shows its verdict when it ends." if queued else ""
    return see_other(request, page_url(model) + "#releases",
                     f"Release {release.get('version', '')} registered (signature "
                     f"{release.get('signature', 'unchecked')}, SHA-256 {release.get('sha256', '')}).{then}")


@router.post(INDEX + "/{model}/advisories")
def add_advisory(request: Request, svc: SvcDep, who: Viewer, model: Model,
                 csaf: Annotated[UploadFile | None, File()] = None) -> Response:
    try:
        data = _read(csaf, "csaf")
        if data is None:
            raise Invalid(["body", "csaf"], "csaf: none chosen; fix: choose the CSAF 2.0 advisory (JSON)")
        done = actions.add_advisory(svc, who, model, data)
    except Invalid as exc:
        return _record_page(request, svc, model, status=422, errors=field_errors_of(exc, ADVISORY_FIELDS, "csaf"),
                            form="advisory")
    except (Conflict, TooLarge) as exc:
        return _record_page(request, svc, model, status=exc.status, errors={"csaf": str(exc)}, form="advisory")
    advisory = done.get("advisory", done)
    return see_other(request, page_url(model) + "#advisories",
                     f"Advisory {advisory.get('id', '')} registered; the record's open advisories are counted again.")


@router.post(INDEX + "/{model}/releases/{version}/retest")
def requeue(request: Request, svc: SvcDep, who: EngineerView, model: Model, version: Version) -> Response:
    try:
        done = actions.requeue_retest(svc, who, model, version)
    except (Conflict, Invalid) as exc:
        return see_other(request, page_url(model) + "#releases", f"Not queued: {exc}")
    queued = (done.get("retest") or done).get("queued_id")
    return see_other(request, page_url(model) + "#releases",
                     f"The re-test of {version} is queued again (queued run {queued}).")


@router.post("/reports/{run_id}/open-record")
def open_record(request: Request, svc: SvcDep, who: EngineerView, run_id: RunId) -> Response:
    """The engineer's button on an approved report: open the product's record (or add this report to it)."""
    try:
        done = actions.open_record(svc, who, run_id)
    except (Conflict, Invalid, NotFound) as exc:
        return see_other(request, f"/reports/{quote(run_id)}", f"The record was not opened: {exc}")
    model = str(done.get("model", ""))
    return see_other(request, page_url(model), f"The record of {model} now holds the report of run {run_id}; "
                                               f"this page is public.")

