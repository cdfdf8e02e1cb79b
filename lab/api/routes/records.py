"""Product records over HTTP: the public JSON anyone reads without an account (rate-limited per client
address), and the writes: an engineer opens a record, the product's manufacturer registers releases
and advisories, an engineer queues a re-test again. The rules are `lab.actions.records`; these
routes parse the request and shape the answer.
"""

from __future__ import annotations

from typing import Annotated, Any
from xml.etree import ElementTree

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import Response

from lab.actions import records as actions
from lab.actions.errors import TooLarge
from lab.actions.uploads import too_large_message
from lab.api.deps import Engineer, Manufacturer, ServicesDep
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors
from lab.api.schemas.records import (
    AdvisoryOut,
    AfterQuery,
    AfterSeqQuery,
    Chain,
    Change,
    LimitQuery,
    ModelPath,
    OpenRecordIn,
    PageLimitQuery,
    RecordSummary,
    RecordView,
    ReleaseOut,
    Revision,
    SeqPath,
    VersionPath,
)

PUBLIC_ERRORS = errors(429, 503, why={429: "Over this address's rate limit (Retry-After says when to retry)"})
ATOM = "http://www.w3.org/2005/Atom"
SBOM_MEDIA_TYPE = "application/vnd.cyclonedx+json"


async def public_client(request: Request, svc: ServicesDep) -> None:
    """Anyone may read; each client address draws from the app's rate limiter like a token does."""
    address = request.client.host if request.client else "unknown"
    wait = svc.limiter.allow(f"public:{address}")
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"rate limit: retry in {wait:.2f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})


public = APIRouter(tags=["product records (public)"], dependencies=[Depends(public_client)], responses=PUBLIC_ERRORS)
router = APIRouter(tags=["product records"], responses=errors(*AUTHENTICATED))


# --- public: no account -------------------------------------------------------------------------------


@public.get("/records", response_model=list[RecordSummary], summary="Every product record with its headline figures")
def list_records(svc: ServicesDep) -> list[dict[str, Any]]:
    return actions.public_index(svc)


@public.get("/records/{model}", response_model=RecordView, responses=errors(404, 422),
            summary="A product's record: the last revision's record and today's headline figures")
def get_record(model: ModelPath, svc: ServicesDep) -> dict[str, Any]:
    return actions.public_view(svc, model)


@public.get("/records/{model}/revisions", response_model=Chain, responses=errors(404, 422),
            summary="The record's signed chain by pages (?after=SEQ&limit=N, `next` links the following page), "
                    "as `certlab verify-record URL` reads it; without them the whole chain up to 200 revisions, "
                    "else its first page")
def get_revisions(model: ModelPath, svc: ServicesDep, after: AfterSeqQuery = None,
                  limit: PageLimitQuery = None) -> dict[str, Any]:
    return actions.revisions(svc, model, after=after, limit=limit)


@public.get("/records/{model}/revisions/{seq}", response_model=Revision, responses=errors(404, 422),
            summary="One revision as it was signed (old revisions stay readable)")
def get_revision(model: ModelPath, seq: SeqPath, svc: ServicesDep) -> dict[str, Any]:
    return actions.revision(svc, model, seq)


@public.get("/records/{model}/releases/{version}/sbom", response_class=Response, responses={
    **errors(404, 422), 200: {"description": "The release's CycloneDX JSON SBOM, the bytes as uploaded (their SHA-256 "
                                             "is the one the signed record names)",
                              "content": {SBOM_MEDIA_TYPE: {"schema": {"type": "object"}}}}},
    summary="A release's SBOM exactly as its manufacturer uploaded it")
def get_release_sbom(model: ModelPath, version: VersionPath, svc: ServicesDep) -> Response:
    return Response(actions.release_sbom(svc, model, version), media_type=SBOM_MEDIA_TYPE)


@public.get("/feed/records.json", response_model=list[Change], responses=errors(422),
            summary="Changes to every product's record, oldest first: poll with ?after=<last id seen>")
def feed_json(svc: ServicesDep, after: AfterQuery = 0, limit: LimitQuery = 100) -> list[dict[str, Any]]:
    return actions.changes(svc, after=after, limit=limit)


@public.get("/feed/records.atom", response_class=Response,
            responses={200: {"description": "The newest changes as an Atom feed",
                             "content": {"application/atom+xml": {"schema": {"type": "string"}}}}},
            summary="The newest changes to every product's record, as Atom")
def feed_atom(request: Request, svc: ServicesDep) -> Response:
    return Response(atom(actions.latest_changes(svc), str(request.base_url)), media_type="application/atom+xml")


def atom(items: list[dict[str, Any]], base: str) -> bytes:
    """An Atom 1.0 document of feed items (absolute links under `base`)."""
    base = base.rstrip("/")
    ElementTree.register_namespace("", ATOM)
    feed = ElementTree.Element(f"{{{ATOM}}}feed")
    ElementTree.SubElement(feed, f"{{{ATOM}}}title").text = "certlab product records: changes"
    ElementTree.SubElement(feed, f"{{{ATOM}}}id").text = f"{base}/feed/records.atom"
    ElementTree.SubElement(feed, f"{{{ATOM}}}link", href=f"{base}/feed/records.atom", rel="self")
    ElementTree.SubElement(feed, f"{{{ATOM}}}updated").text = items[-1]["at"] if items else "1970-01-01T00:00:00Z"
    ElementTree.SubElement(ElementTree.SubElement(feed, f"{{{ATOM}}}author"), f"{{{ATOM}}}name").text = "certlab"
    for item in reversed(items):  # newest first, as feed readers expect
        entry = ElementTree.SubElement(feed, f"{{{ATOM}}}entry")
        ElementTree.SubElement(entry, f"{{{ATOM}}}title").text = f"{item['model']} #{item['seq']} {item['kind']}"
        ElementTree.SubElement(entry, f"{{{ATOM}}}id").text = f"urn:certlab:record:{item['model']}:{item['seq']}:{item['hash']}"
        ElementTree.SubElement(entry, f"{{{ATOM}}}updated").text = item["at"]
        ElementTree.SubElement(entry, f"{{{ATOM}}}link", href=f"{base}{item['url']}", type="application/json")
        ElementTree.SubElement(entry, f"{{{ATOM}}}summary").text = item["summary"]
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(feed, encoding="utf-8")


# --- the lab's and the manufacturer's writes ----------------------------------------------------------------


def _read_small(upload: UploadFile, limit: int, what: str) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(too_large_message(limit, what))
    return data


@router.post("/records", response_model=RecordView, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, 422, why={
                 409: "The report is not approved or does not verify, the run certifies the record already, "
                      "or the model has another manufacturer's record",
                 422: "Invalid body, or the run's report covers no single model"}),
             summary="Open the record of the run's product from its approved report, or add a later certifying "
                     "report (lab engineers)")
def open_record(body: OpenRecordIn, who: Engineer, svc: ServicesDep) -> dict[str, Any]:
    return actions.open_record(svc, who, body.run_id)


@router.post("/records/{model}/releases", response_model=ReleaseOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, 422, why={
                 409: "This version is registered already",
                 422: "Bad SBOM (loc body, sbom, then the field's path), an image of another model or without a "
                      "version, or a bad date"}),
             summary="Register a firmware release of your certified product (multipart: image, sbom, released_on); "
                     "its re-test is queued")
def add_release(model: ModelPath, who: Manufacturer, svc: ServicesDep,
                image: Annotated[UploadFile, File(description="the release image, e.g. TH-100-1.5.0.clfw")],
                sbom: Annotated[UploadFile, File(description="its CycloneDX JSON SBOM (1.4 to 1.6)")],
                released_on: Annotated[str | None, Form(description="YYYY-MM-DD; default today")] = None) -> dict:
    data = _read_small(sbom, svc.settings.max_upload_bytes, "SBOM")
    return actions.add_release(svc, who, model, image.file, image.filename, data, released_on)


@router.post("/records/{model}/advisories", response_model=AdvisoryOut, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, *BODY, 422, why={
                 409: "This advisory is in the record already (send a newer revision of it)",
                 422: "Bad CSAF (loc body, csaf, then the field's path)"}),
             summary="Register a CSAF 2.0 security advisory for your certified product (multipart: csaf)")
def add_advisory(model: ModelPath, who: Manufacturer, svc: ServicesDep,
                 csaf: Annotated[UploadFile, File(description="the CSAF 2.0 JSON document")]) -> dict:
    return actions.add_advisory(svc, who, model, _read_small(csaf, svc.settings.max_upload_bytes, "advisory"))


@router.post("/records/{model}/releases/{version}/retest", response_model=ReleaseOut,
             status_code=status.HTTP_201_CREATED,
             responses=errors(403, 404, 422, why={409: "Its re-test is queued or running already"}),
             summary="Queue a release's re-test again (lab engineers)")
def requeue_retest(model: ModelPath, version: VersionPath, who: Engineer, svc: ServicesDep) -> dict:
    return actions.requeue_retest(svc, who, model, version)
